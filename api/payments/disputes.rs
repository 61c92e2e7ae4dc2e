//! Disputes Stripe reports about nts's payments (`charge.dispute.*`): one row
//! per dispute, found by Stripe's dispute id and matched to the payment by
//! the charge's PaymentIntent. Its status only moves forward (a guarded
//! transition), so late or repeated news changes nothing.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::status::{checked, DisputeStatus, Transitions};

/// A dispute as the provider reports it.
#[derive(Debug, Clone)]
pub struct DisputeNews {
    pub provider_ref: String,
    /// The disputed charge's PaymentIntent.
    pub payment_ref: String,
    pub status: DisputeStatus,
    /// In nts's minor units of `currency`.
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    /// `Some(true)`: the amount was taken from the balance; `Some(false)`: given back.
    pub funds_withdrawn: Option<bool>,
}

/// Records the news: the dispute's row (made at first sight), moved to the
/// status the news gives if that is forward. Answers the dispute's id and
/// status, or `None` for a dispute of no payment of nts's.
pub async fn record(pool: &PgPool, news: &DisputeNews) -> Result<Option<(Uuid, DisputeStatus)>, sqlx::Error> {
    let made = sqlx::query!(
        "INSERT INTO disputes (event_id, id, payment_id, order_id, provider_ref, status, amount_minor, currency, reason)
         SELECT o.event_id, gen_random_uuid(), p.id, o.id, $2, $3, $4, $5, $6
         FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.provider_ref = $1
         ON CONFLICT (provider_ref, event_id) DO NOTHING",
        news.payment_ref,
        news.provider_ref,
        news.status as DisputeStatus,
        news.amount_minor,
        news.currency,
        news.reason,
    )
    .execute(pool)
    .await?
    .rows_affected();
    if made == 1 {
        tracing::warn!(dispute = %news.provider_ref, payment_ref = %news.payment_ref, status = news.status.as_str(),
            reason = %news.reason, "a payment is disputed");
    }
    let from: Vec<DisputeStatus> = DisputeStatus::ALL.into_iter().filter(|s| s.can_become(news.status)).collect();
    let (from, to) = checked(&from, news.status);
    sqlx::query!(
        "UPDATE disputes SET status = $2, amount_minor = $3, reason = $4, updated_at = now()
         WHERE provider_ref = $1 AND status = ANY($5)",
        news.provider_ref,
        to as DisputeStatus,
        news.amount_minor,
        news.reason,
        from as &[DisputeStatus],
    )
    .execute(pool)
    .await?;
    if let Some(withdrawn) = news.funds_withdrawn {
        sqlx::query!(
            "UPDATE disputes SET funds_withdrawn = $2, updated_at = now() WHERE provider_ref = $1",
            news.provider_ref,
            withdrawn
        )
        .execute(pool)
        .await?;
    }
    let row = sqlx::query!(
        r#"SELECT id, status AS "status: DisputeStatus" FROM disputes WHERE provider_ref = $1"#,
        news.provider_ref
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.id, r.status)))
}

/// A dispute, for the organiser.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_name: String,
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub buyer_email: String,
    /// Stripe's dispute id.
    pub provider_ref: String,
    /// As Stripe names it: `warning_*` for an inquiry (no money taken),
    /// `needs_response`, `under_review`, `won` or `lost` for a chargeback.
    pub status: DisputeStatus,
    pub amount_minor: i64,
    pub currency: String,
    /// Stripe's reason (`fraudulent`, `product_not_received`, …).
    pub reason: String,
    pub funds_withdrawn: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// Disputes, newest first (at most 500), of one event or all.
pub async fn list(pool: &PgPool, event_id: Option<Uuid>) -> Result<Vec<DisputeView>, sqlx::Error> {
    sqlx::query_as!(
        DisputeView,
        r#"SELECT d.id, d.event_id, e.name AS event_name, d.order_id, d.payment_id, o.buyer_email, d.provider_ref,
                  d.status AS "status: DisputeStatus", d.amount_minor, d.currency AS "currency!", d.reason,
                  d.funds_withdrawn, d.created_at, d.updated_at
           FROM disputes d JOIN orders o ON o.id = d.order_id JOIN events e ON e.id = d.event_id
           WHERE $1::uuid IS NULL OR d.event_id = $1
           ORDER BY d.updated_at DESC, d.id LIMIT 500"#,
        event_id
    )
    .fetch_all(pool)
    .await
}
