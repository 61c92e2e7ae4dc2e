//! Logging, filtered by `RUST_LOG` (default `info`): human-readable lines, or
//! with `NTS_LOG_FORMAT=json` one JSON object per line. Every request gets an
//! id (the caller's `X-Request-Id` when it is a sane one, else a new one),
//! returned in the answer's `X-Request-Id` and carried by every line logged
//! while it is served, provider calls included; when it is answered, one line
//! (target `nts::access`: `RUST_LOG=info,nts::access=off` leaves it out) gives
//! its route template, status and duration.
//! Nothing logged carries buyer secrets, tokens or card data: routes are
//! logged as templates, never as paths (a ticket's path holds its code).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::ConfigError;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `NTS_LOG_FORMAT`: `text` (the default) or `json`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("NTS_LOG_FORMAT").ok().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError {
                variable: "NTS_LOG_FORMAT",
                problem: format!("expected text or json, got {other:?}"),
            }),
        }
    }
}

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let _ = match format {
        LogFormat::Text => fmt().with_env_filter(filter).with_target(false).try_init(),
        LogFormat::Json => fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_target(false)
            .try_init(),
    };
}

/// Letters, digits and `-._:`, at most 64 of them: anything else could forge
/// log lines or carry a secret, and is replaced by a new id.
fn sane_request_id(given: Option<&HeaderValue>) -> Option<String> {
    let id = given?.to_str().ok()?.trim();
    let ok = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    ok.then(|| id.to_owned())
}

/// Outermost middleware: the request id, its span, the answer's log line and
/// the request metrics.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = sane_request_id(req.headers().get(REQUEST_ID_HEADER))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method);
    let result = next.call(req).instrument(span.clone()).await;
    let (status, route) = match &result {
        Ok(res) => (res.status(), res.request().match_pattern()),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    // Unmatched paths (static files, 404s) share one label: their paths are anyone's to invent.
    let route = route.filter(|r| !r.is_empty()).unwrap_or_else(|| "other".into());
    let elapsed = started.elapsed();
    crate::metrics::record_request(&method, &route, status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            target: "nts::access",
            route = %route,
            status = status.as_u16(),
            duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            "answered"
        )
    });
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_taken() {
        let id = |s: &str| sane_request_id(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(id("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(id(""), None);
        assert_eq!(id("with space"), None);
        assert_eq!(id("line\"quote"), None);
        assert_eq!(id(&"a".repeat(65)), None);
        assert_eq!(sane_request_id(None), None);
    }
}
