//! Operations: health and the public client configuration.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::payments::Provider;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
    /// `ok`
    pub database: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = format!("`{}`", ErrorCode::DatabaseUnavailable), body = ErrorBody),
    )
)]
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(Health { status: "ok", database: "ok" })),
        Ok(Err(e)) => Err(match ApiError::from(e) {
            ApiError::Internal(_) => unavailable(),
            other => other,
        }),
        Err(_) => Err(unavailable()),
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable { code: ErrorCode::DatabaseUnavailable, message: "the database does not answer".into() }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientConfig {
    /// `simulated` (no real money moves) or `stripe`.
    pub gateway: &'static str,
    pub stripe_publishable_key: Option<String>,
    pub stripe_js_url: Option<String>,
    /// Whether the demo event and its reset call are on.
    pub demo: bool,
    /// How long a hold lasts.
    pub hold_seconds: u64,
}

/// What the pages need to know: which payment gateway is active.
#[utoipa::path(tag = "ops", responses((status = 200, description = "Client configuration", body = ClientConfig)))]
#[get("/config")]
pub async fn client_config(state: web::Data<AppState>) -> HttpResponse {
    let stripe = state.config.stripe().filter(|_| state.payments.provider() == Provider::Stripe);
    HttpResponse::Ok().json(ClientConfig {
        gateway: state.payments.provider().as_str(),
        stripe_publishable_key: stripe.map(|s| s.publishable_key.clone()),
        stripe_js_url: stripe.map(|s| s.js_url.clone()),
        demo: state.config.demo,
        hold_seconds: state.config.hold_duration.as_secs(),
    })
}
