//! The lines of a hold (and of the order made from it): one per ticket type.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::views::LineView;

/// The lines of hold `hold_id`, in the order the buyer asked for them.
///
/// Planned afresh at every execution (not a prepared statement kept per
/// connection): `hold_lines` starts empty at a sale's start, and a plan cached
/// then (a sequential scan) would be kept while the table grows, until an
/// `ANALYZE` invalidates it. Checked against the schema by the tests that
/// read every hold and order through it.
pub async fn of_hold(db: impl PgExecutor<'_>, hold_id: Uuid) -> Result<Vec<LineView>, sqlx::Error> {
    sqlx::query_as::<_, LineView>(
        "SELECT l.ticket_type_id, t.name AS ticket_type_name, l.quantity, l.unit_price_minor,
                l.unit_price_minor * l.quantity AS amount_minor
         FROM hold_lines l JOIN ticket_types t ON t.id = l.ticket_type_id
         WHERE l.hold_id = $1 ORDER BY l.position",
    )
    .bind(hold_id)
    .persistent(false)
    .fetch_all(db)
    .await
}
