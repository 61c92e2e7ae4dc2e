//! The OpenAPI document, generated from the handlers and served at
//! `/api/openapi.json`; `openapi.yaml` at the top of the repository is this
//! document, kept identical by a test (`nts openapi > openapi.yaml` refreshes it).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Type};
use utoipa::{Modify, OpenApi};

use crate::http::ops;
use crate::{admin, checkin, error, mail, payments, sales};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nts",
        description = "Ticket sales that never get the money or the seats wrong.\n\n\
Errors are `{\"code\", \"message\"}` with a stable `code`. Every POST honours `Idempotency-Key`: \
the same key and request replay the first answer (`Idempotent-Replayed: true`). \
Request bodies are JSON (`Content-Type: application/json`) of at most 64 KiB; unknown fields are refused. \
The public API is rate limited per client address, writes and reads apart (429 with `Retry-After`). \
Buyer calls authenticate with the `secret` of their hold or order; a missing or wrong secret answers 404, \
exactly like an id that does not exist, so nobody learns which ids exist.",
        license(name = "MIT")
    ),
    paths(ops::healthz),
    nest((path = "/api/v1", api = V1)),
    components(schemas(error::ErrorBody, error::ErrorCode)),
    modifiers(&Security, &CrossCutting, &Links),
    tags(
        (name = "events", description = "What is on sale"),
        (name = "holds", description = "Seats set aside for a few minutes"),
        (name = "orders", description = "Checkout, payment attempts, tickets"),
        (name = "payments", description = "Payment provider endpoints"),
        (name = "admin", description = "Organiser API (admin bearer token)"),
        (name = "checkin", description = "Check-in at the door: devices (admin token), scans (device token)"),
        (name = "ops", description = "Health and client configuration"),
    )
)]
pub struct ApiDoc;

/// Everything under `/api/v1`.
#[derive(OpenApi)]
#[openapi(paths(
    sales::events::list_events,
    sales::events::get_event,
    sales::holds::create_hold,
    sales::holds::get_hold,
    sales::holds::release_hold,
    payments::orders::checkout,
    payments::orders::get_order,
    payments::orders::create_payment,
    sales::orders::ticket_qr,
    mail::resend::resend,
    payments::simulated_routes::confirm,
    payments::webhook::receive,
    admin::events::create_event,
    admin::events::list_events,
    admin::guests::guest_list,
    admin::refunds::refund,
    admin::refunds::retry_refund,
    admin::refunds::list_refunds,
    admin::refunds::release_seats,
    admin::audit::payments_audit,
    admin::disputes::list_disputes,
    admin::demo::reset,
    mail::admin::outbox,
    mail::admin::retry,
    ops::client_config,
    checkin::door::check_in,
    checkin::door::upload_offline,
    checkin::door::gate_state,
    checkin::devices::create_device,
    checkin::devices::list_devices,
    checkin::devices::revoke_device,
    checkin::report::checkin_report,
    checkin::report::undo_checkin,
))]
struct V1;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The organiser's token, `NTS_ADMIN_TOKEN` (at least 32 characters)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "buyer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!(
                        "The `secret` of the hold (from `POST /api/v1/events/{{event_id}}/holds`) or of the order \
                         (from `POST /api/v1/holds/{{hold_id}}/checkout`), returned once when it is created. \
                         Secrets are random (256 bits) and stored only hashed. Without the right secret every \
                         buyer call answers 404 `{}`, exactly as for an id that does not exist: a client \
                         (or a fuzzer) that does not hold the secret only ever sees 404.",
                        error::ErrorCode::NotFound
                    )))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A check-in device's token (`ntsdev_…`, from `POST /api/v1/admin/events/{event_id}/checkin-devices`, \
                         shown once). It checks tickets of its event and nothing else; revoked tokens answer 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers every operation can get from the layers around its handler
/// (body limit, JSON parsing, idempotency, rate limit, database), added here
/// once instead of on every handler.
struct CrossCutting;

impl Modify for CrossCutting {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (false, item.get.as_mut()),
                (false, item.delete.as_mut()),
                (true, item.post.as_mut()),
                (false, item.put.as_mut()),
                (false, item.patch.as_mut()),
            ];
            for (is_post, op) in operations {
                if let Some(op) = op {
                    document_operation(path, is_post, op);
                }
            }
        }
    }
}

fn document_operation(path: &str, is_post: bool, op: &mut Operation) {
    let secured_by = |scheme: &str| {
        op.security.iter().flatten().any(|req| serde_json::to_value(req).is_ok_and(|v| v.get(scheme).is_some()))
    };
    let (admin, buyer) = (secured_by("admin"), secured_by("buyer"));
    let has_body = op.request_body.is_some();
    let uses_database = path != "/api/v1/config";
    if admin {
        error(
            op,
            401,
            &format!("`{}`: no admin token", error::ErrorCode::Unauthorized),
            &[("WWW-Authenticate", "`Bearer`")],
        );
        error(op, 403, &format!("`{}`: wrong admin token", error::ErrorCode::Forbidden), &[]);
    }
    if buyer {
        error(op, 404, &format!("`{}`: no such id, or not its secret", error::ErrorCode::NotFound), &[]);
    }
    if path.contains('{') {
        error(op, 404, &format!("`{}`: no such id (or a malformed one)", error::ErrorCode::NotFound), &[]);
    }
    let has_query = op.parameters.iter().flatten().any(|p| p.parameter_in == ParameterIn::Query);
    if has_query {
        error(
            op,
            422,
            &format!("`{}`: a query parameter is malformed or unknown", error::ErrorCode::ValidationFailed),
            &[],
        );
    }
    if has_body {
        error(op, 400, &format!("`{}`: the body is not JSON", error::ErrorCode::InvalidJson), &[]);
        error(
            op,
            415,
            &format!("`{}`: the body is not `application/json`", error::ErrorCode::UnsupportedContentType),
            &[],
        );
        error(
            op,
            422,
            &format!(
                "`{}`: a value is out of range, a field is missing or unknown (the message names it)",
                error::ErrorCode::ValidationFailed
            ),
            &[],
        );
    }
    if is_post {
        // One description of the header for every POST, whatever a handler declared.
        let parameters = op.parameters.get_or_insert_with(Vec::new);
        parameters.retain(|p| !(p.parameter_in == ParameterIn::Header && p.name == crate::idempotency::HEADER));
        parameters.push(
            ParameterBuilder::new()
                .name(crate::idempotency::HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retry safe: the same key with the same request replays the first answer. \
                     Keys are scoped by path and credential.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build(),
        );
        error(
            op,
            400,
            &format!("`{}`: not 1 to 255 visible ASCII characters", error::ErrorCode::InvalidIdempotencyKey),
            &[],
        );
        error(
            op,
            409,
            &format!("`{}`: the first request with this key is still running", error::ErrorCode::IdempotencyKeyInUse),
            &[],
        );
        error(
            op,
            422,
            &format!("`{}`: this key was used with another request", error::ErrorCode::IdempotencyKeyReused),
            &[],
        );
        error(op, 413, &format!("`{}`: the body exceeds 64 KiB", error::ErrorCode::PayloadTooLarge), &[]);
        for (status, response) in op.responses.responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                response.headers.insert(
                    crate::idempotency::REPLAYED_HEADER.into(),
                    header("`true` when this is the stored answer to an earlier request with the same key"),
                );
            }
        }
    }
    // As `http::rate_limit` counts them: the public API, reads and writes, but
    // not the organiser's calls nor the provider's webhooks.
    if path.starts_with("/api/v1/") && !path.starts_with("/api/v1/admin/") && !path.contains("/stripe/") {
        error(
            op,
            429,
            &format!("`{}`: too many requests from this address", error::ErrorCode::RateLimited),
            &[("Retry-After", "Seconds to wait")],
        );
    }
    if uses_database {
        error(
            op,
            503,
            &format!("`{}`: retry shortly", error::ErrorCode::DatabaseUnavailable),
            &[("Retry-After", "Seconds to wait")],
        );
    }
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}

/// Documents an error answer, or adds `description` to the one already documented.
fn error(op: &mut Operation, status: u16, description: &str, headers: &[(&str, &str)]) {
    let responses = &mut op.responses.responses;
    let entry = responses.entry(status.to_string()).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description("")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    });
    let RefOr::T(response) = entry else { return };
    let code = description.split(':').next().unwrap_or_default();
    if response.description.is_empty() {
        response.description = description.to_owned();
    } else if !response.description.contains(code) {
        response.description = format!("{}; or {description}", response.description);
    }
    for (name, text) in headers {
        response.headers.entry((*name).to_owned()).or_insert_with(|| header(text));
    }
}

/// How the answer of one operation feeds the next (OpenAPI links): the ids and
/// the buyer secret a hold, a checkout or a payment attempt returns. Generated
/// clients and fuzzers follow them through a whole purchase.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let hold = [("hold_id", "$response.body#/id"), ("header.Authorization", "Bearer {$response.body#/secret}")];
        let order = [
            ("order_id", "$response.body#/order/id"),
            ("header.Authorization", "Bearer {$response.body#/order/secret}"),
        ];
        let first_payment = [
            ("payment_id", "$response.body#/payment/id"),
            ("header.Authorization", "Bearer {$response.body#/order/secret}"),
        ];
        let payment = [("payment_id", "$response.body#/id"), ("header.Authorization", "$request.header.Authorization")];
        let event = [("event_id", "$response.body#/id")];
        let links: &[(&str, &str, &[&str], &[(&str, &str)])] = &[
            ("create_hold", "201", &["get_hold", "release_hold", "checkout"], &hold),
            ("checkout", "201", &["get_order", "create_payment"], &order),
            ("checkout", "201", &["confirm"], &first_payment),
            ("create_payment", "201", &["confirm"], &payment),
            ("create_event", "201", &["get_event", "create_hold", "guest_list"], &event),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()].into_iter().flatten() {
                let id = op.operation_id.clone().unwrap_or_default();
                for (from, status, targets, parameters) in links.iter().filter(|l| l.0 == id) {
                    let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else { continue };
                    for target in *targets {
                        let link = parameters
                            .iter()
                            .fold(LinkBuilder::new().operation_id(*target), |link, (name, value)| {
                                link.parameter(*name, *value)
                            })
                            .build();
                        response.links.insert(format!("{from}_{target}"), RefOr::T(link));
                    }
                }
            }
        }
    }
}

/// The document as served at `/api/openapi.json`.
pub fn json() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    fix_link_keys_json(&mut doc);
    doc
}

/// The document as committed in `openapi.yaml` (same content, fields in document order).
pub fn yaml() -> String {
    let mut doc = serde_norway::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    fix_link_keys_yaml(&mut doc);
    serde_norway::to_string(&doc).expect("the OpenAPI document serialises")
}

// utoipa 5 writes a link's `operationId` as `operation_id`; OpenAPI tools then
// cannot find the link's target. Renamed here, inside `links` objects only.
const LINK_KEYS: [(&str, &str); 2] = [("operation_id", "operationId"), ("operation_ref", "operationRef")];

fn fix_link_keys_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut().filter_map(serde_json::Value::as_object_mut) {
                    for (from, to) in LINK_KEYS {
                        if let Some(v) = link.remove(from) {
                            link.insert(to.into(), v);
                        }
                    }
                }
            }
            map.values_mut().for_each(fix_link_keys_json);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(fix_link_keys_json),
        _ => {}
    }
}

fn fix_link_keys_yaml(value: &mut serde_norway::Value) {
    match value {
        serde_norway::Value::Mapping(map) => {
            if let Some(serde_norway::Value::Mapping(links)) = map.get_mut("links") {
                for link in links.values_mut().filter_map(serde_norway::Value::as_mapping_mut) {
                    for (from, to) in LINK_KEYS {
                        if let Some(v) = link.remove(from) {
                            link.insert(to.into(), v);
                        }
                    }
                }
            }
            map.values_mut().for_each(fix_link_keys_yaml);
        }
        serde_norway::Value::Sequence(items) => items.iter_mut().for_each(fix_link_keys_yaml),
        _ => {}
    }
}
