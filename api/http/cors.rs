//! Cross-origin calls to the API from browsers: off unless `NTS_CORS_ORIGINS`
//! lists the sites allowed to make them. Buyers and the organiser authenticate
//! with bearer headers, never cookies, so no credentials mode is needed.

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::middleware::Condition;

pub fn middleware(origins: &[String]) -> Condition<Cors> {
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::RETRY_AFTER, header::HeaderName::from_static("idempotent-replayed")])
        .max_age(600);
    Condition::new(!origins.is_empty(), cors)
}
