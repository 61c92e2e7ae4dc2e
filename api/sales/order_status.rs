//! The one way an order's status changes (see [`OrderStatus`]'s state machine).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::status::{checked, OrderStatus};

/// The order that moved: its seats are its hold's lines.
pub struct Moved {
    pub id: Uuid,
    pub hold_id: Uuid,
    /// Set once it became paid.
    pub paid_at: Option<time::OffsetDateTime>,
}

/// Moves the order to `to` if it is in one of `from` and answers its seats;
/// `None` if it was not. Every transition of an order ends it (`finished_at`);
/// becoming paid also stamps `paid_at`.
pub async fn transition(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
    from: &[OrderStatus],
    to: OrderStatus,
) -> Result<Option<Moved>, sqlx::Error> {
    Ok(transition_all(db, &[order_id], from, to).await?.pop())
}

/// [`transition`] for every order of `ids`; answers those that moved.
pub async fn transition_all(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    from: &[OrderStatus],
    to: OrderStatus,
) -> Result<Vec<Moved>, sqlx::Error> {
    let (from, to) = checked(from, to);
    sqlx::query_as!(
        Moved,
        r#"UPDATE orders SET status = $3, finished_at = now(), paid_at = CASE WHEN $4 THEN now() ELSE paid_at END
           WHERE id = ANY($1) AND status = ANY($2)
           RETURNING id, hold_id, paid_at"#,
        ids,
        from as &[OrderStatus],
        to as OrderStatus,
        to == OrderStatus::Paid,
    )
    .fetch_all(db)
    .await
}
