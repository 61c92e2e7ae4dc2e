//! The one way an order's status changes (see [`OrderStatus`]'s state machine).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::status::{checked, OrderStatus};

/// The order that moved: its seats are its hold's lines.
pub struct Moved {
    pub hold_id: Uuid,
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
    let (from, to) = checked(from, to);
    sqlx::query_as!(
        Moved,
        r#"UPDATE orders SET status = $3, finished_at = now(), paid_at = CASE WHEN $4 THEN now() ELSE paid_at END
           WHERE id = $1 AND status = ANY($2)
           RETURNING hold_id"#,
        order_id,
        from as &[OrderStatus],
        to as OrderStatus,
        to == OrderStatus::Paid,
    )
    .fetch_optional(db)
    .await
}
