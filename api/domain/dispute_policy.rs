//! An event's rule for tickets of a disputed order at the door.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[sqlx(type_name = "dispute_policy", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DisputePolicy {
    /// Tickets of a disputed order still go in (the organiser fights the dispute with the check-in as evidence).
    #[default]
    Admit,
    /// Tickets of an order whose chargeback is open or lost are refused;
    /// an inquiry (`warning_*`) never turns a buyer away.
    RefuseWhileDisputed,
}
