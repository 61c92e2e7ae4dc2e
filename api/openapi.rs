//! The OpenAPI document, generated from the handlers and served at
//! `/api/openapi.json`; `openapi.yaml` at the top of the repository is this
//! document, kept identical by a test (`nts openapi > openapi.yaml` refreshes it).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, error, ops, payments, sales};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nts",
        description = "Ticket sales that never get the money or the seats wrong.\n\nErrors are `{\"code\", \"message\"}`. Every POST honours `Idempotency-Key`.",
        license(name = "MIT")
    ),
    paths(ops::healthz),
    nest((path = "/api/v1", api = V1)),
    components(schemas(error::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "events", description = "What is on sale"),
        (name = "holds", description = "Seats set aside for a few minutes"),
        (name = "orders", description = "Checkout, payment attempts, tickets"),
        (name = "payments", description = "Payment provider endpoints"),
        (name = "admin", description = "Organiser API (admin bearer token)"),
        (name = "ops", description = "Health and client configuration"),
    )
)]
pub struct ApiDoc;

/// Everything under `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    paths(
        sales::events::list_events,
        sales::events::get_event,
        sales::holds::create_hold,
        sales::holds::get_hold,
        sales::holds::release_hold,
        sales::holds::checkout,
        sales::orders::get_order,
        sales::orders::create_payment,
        sales::orders::ticket_qr,
        payments::simulated_routes::confirm,
        payments::webhook::receive,
        admin::events::create_event,
        admin::events::list_events,
        admin::guests::guest_list,
        admin::refunds::refund,
        admin::audit::payments_audit,
        admin::demo::reset,
        ops::client_config,
    )
)]
struct V1;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("NTS_ADMIN_TOKEN")).build(),
            ),
        );
        components.add_security_scheme(
            "buyer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `secret` of the hold or order, as returned when it was created"))
                    .build(),
            ),
        );
    }
}

/// The document as committed in `openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().expect("the OpenAPI document serialises")
}
