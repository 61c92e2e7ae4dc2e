//! The lines of a hold (and of the order made from it): one per ticket type.

use std::collections::HashMap;

use sqlx::PgExecutor;
use uuid::Uuid;

use super::views::LineView;

/// The lines of hold `hold_id`, in the order the buyer asked for them.
pub async fn of_hold(db: impl PgExecutor<'_>, hold_id: Uuid) -> Result<Vec<LineView>, sqlx::Error> {
    Ok(of_holds(db, &[hold_id]).await?.remove(&hold_id).unwrap_or_default())
}

#[derive(sqlx::FromRow)]
struct HoldLine {
    hold_id: Uuid,
    #[sqlx(flatten)]
    line: LineView,
}

/// The lines of each hold of `hold_ids` that has any, in the order the buyer
/// asked for them.
///
/// Planned afresh at every execution (not a prepared statement kept per
/// connection): `hold_lines` starts empty at a sale's start, and a plan cached
/// then (a sequential scan) would be kept while the table grows, until an
/// `ANALYZE` invalidates it. Checked against the schema by the tests that
/// read every hold and order through it.
pub async fn of_holds(db: impl PgExecutor<'_>, hold_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<LineView>>, sqlx::Error> {
    let rows = sqlx::query_as::<_, HoldLine>(
        "SELECT l.hold_id, l.ticket_type_id, t.name AS ticket_type_name, l.quantity, l.unit_price_minor,
                l.unit_price_minor * l.quantity AS amount_minor
         FROM hold_lines l JOIN ticket_types t ON t.id = l.ticket_type_id
         WHERE l.hold_id = ANY($1) ORDER BY l.hold_id, l.position",
    )
    .bind(hold_ids)
    .persistent(false)
    .fetch_all(db)
    .await?;
    let mut lines: HashMap<Uuid, Vec<LineView>> = HashMap::with_capacity(hold_ids.len());
    for row in rows {
        lines.entry(row.hold_id).or_default().push(row.line);
    }
    Ok(lines)
}
