//! Watches the inventory while the sale runs: a seat promised twice for a
//! moment (two holds on the last seat) is an oversell even if one of them
//! later expires. Each sample is one snapshot, in which the counters and the
//! rows of a correct nts agree and stay within capacity.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::audit::{type_lines, TypeLine};
use crate::stats::Stats;
use nts_testkit::TestDb;

pub async fn run(db: Arc<TestDb>, event_id: Uuid, stats: Arc<Stats>, mut stop: watch::Receiver<bool>) {
    let mut pool = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => return,
        }
        if pool.is_none() {
            // Fails while PostgreSQL restarts; the next tick tries again.
            pool = db.pool(1).await.ok();
        }
        let Some(p) = &pool else { continue };
        match type_lines(p, event_id).await {
            Ok(types) => {
                stats.inventory_samples.bump();
                stats.peak_oversold.raise_to(types.iter().map(TypeLine::oversold).sum::<i64>() as u64);
                stats.peak_drift.raise_to(types.iter().map(TypeLine::counter_drift).sum::<i64>() as u64);
            }
            Err(_) => pool = None,
        }
    }
}
