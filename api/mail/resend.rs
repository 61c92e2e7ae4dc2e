//! "Send me my tickets again": the tickets of an address's paid orders go to
//! that address. The answer is the same whether or not the address bought
//! anything, so it tells nobody who bought tickets; requests are limited per
//! client address and per e-mail address (in each instance), so it cannot
//! flood an inbox.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::{post, web, HttpResponse};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::ClientAddress;
use crate::domain::buyer::Email;
use crate::domain::status::OrderStatus;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub struct ResendLimits {
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_email: Option<DefaultKeyedRateLimiter<String>>,
}

impl ResendLimits {
    /// `per_hour` requests per client address and per e-mail address; 0 turns the limit off.
    pub fn new(per_hour: u32) -> Self {
        let quota = NonZeroU32::new(per_hour).map(|n| Quota::per_hour(n).allow_burst(n));
        ResendLimits {
            per_client: quota.map(governor::RateLimiter::keyed),
            per_email: quota.map(governor::RateLimiter::keyed),
        }
    }

    fn check(&self, client: IpAddr, email: &str) -> Result<(), ApiError> {
        let wait = |not_until: governor::NotUntil<_>, now| {
            let wait = governor::NotUntil::wait_time_from(&not_until, now);
            ApiError::RateLimited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        };
        if let Some(l) = &self.per_client {
            l.check_key(&client).map_err(|n| wait(n, l.clock().now()))?;
        }
        if let Some(l) = &self.per_email {
            l.check_key(&email.to_lowercase()).map_err(|n| wait(n, l.clock().now()))?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// The address the tickets were bought with.
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendAccepted {
    pub message: &'static str,
}

/// E-mail the tickets of this address's paid orders to it again.
#[utoipa::path(
    tag = "orders",
    request_body = ResendRequest,
    responses(
        (status = 202, description = "If this address has paid orders, their tickets are on their way to it (the same answer either way)", body = ResendAccepted),
        (status = 422, description = "Not an e-mail address", body = ErrorBody),
        (status = 429, description = format!("`{}`: too many requests from this client or for this address", ErrorCode::RateLimited), body = ErrorBody),
    )
)]
#[post("/orders/resend")]
pub async fn resend(
    state: web::Data<AppState>,
    limits: web::Data<ResendLimits>,
    client: ClientAddress,
    body: web::Json<ResendRequest>,
) -> ApiResult<HttpResponse> {
    let email =
        Email::parse(&body.email).map_err(|m| ApiError::Validation { code: ErrorCode::InvalidEmail, message: m })?;
    limits.check(client.0, email.as_str())?;
    let queued = sqlx::query!(
        "INSERT INTO mail_outbox (id, order_id, kind, recipient)
         SELECT gen_random_uuid(), id, 'resend', buyer_email FROM orders
         WHERE lower(buyer_email) = lower($1) AND status = $2",
        email.as_str(),
        OrderStatus::Paid as OrderStatus,
    )
    .execute(&state.pool)
    .await?;
    tracing::info!(orders = queued.rows_affected(), "tickets asked for again");
    Ok(HttpResponse::Accepted()
        .json(ResendAccepted { message: "if this address bought tickets, they are on their way to it" }))
}
