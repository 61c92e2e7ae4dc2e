//! The lines of a hold (and of the order made from it): one per ticket type.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::views::LineView;

/// The lines of hold `hold_id`, in the order the buyer asked for them.
pub async fn of_hold(db: impl PgExecutor<'_>, hold_id: Uuid) -> Result<Vec<LineView>, sqlx::Error> {
    sqlx::query_as!(
        LineView,
        r#"SELECT l.ticket_type_id, t.name AS ticket_type_name, l.quantity, l.unit_price_minor,
                  l.unit_price_minor * l.quantity AS "amount_minor!"
           FROM hold_lines l JOIN ticket_types t ON t.id = l.ticket_type_id
           WHERE l.hold_id = $1 ORDER BY l.position"#,
        hold_id
    )
    .fetch_all(db)
    .await
}
