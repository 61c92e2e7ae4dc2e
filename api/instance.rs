//! This process's lease in the `instances` table. The lease is renewed about
//! three times a second on a connection of its own (a busy pool cannot starve it);
//! a lease that ran out means the process died, and the Idempotency-Keys its
//! requests claimed are taken over by the clients' retries (see
//! [`idempotency`](crate::idempotency)).

use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

/// How long a lease lasts without renewal: a dead instance's keys are free after at most this.
pub const LEASE: Duration = Duration::from_secs(2);
const RENEW_EVERY: Duration = Duration::from_millis(300);

/// Renews the lease of instance `id` until `stop` turns true, then ends it.
pub async fn keep_lease(pool: PgPool, id: Uuid, mut stop: watch::Receiver<bool>) {
    let options = pool.connect_options();
    let mut conn: Option<PgConnection> = None;
    let mut renewed = Instant::now();
    loop {
        if conn.is_none() {
            conn = options.connect().await.map_err(|e| tracing::warn!(error = %e, "lease: cannot connect")).ok();
        }
        if let Some(c) = conn.as_mut() {
            match renew(c, id, LEASE).await {
                Ok(()) => {
                    if renewed.elapsed() > LEASE / 2 {
                        tracing::warn!(
                            late_ms = renewed.elapsed().as_millis() as u64,
                            "this instance's lease was renewed late"
                        );
                    }
                    renewed = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew this instance's lease");
                    conn = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    // Stopped: in-flight requests have finished, nothing of ours is claimed.
    if let Some(mut c) = conn {
        let _ = sqlx::query!("UPDATE instances SET lease_until = now() WHERE id = $1", id).execute(&mut c).await;
        let _ = c.close().await;
    }
}

async fn renew(conn: &mut PgConnection, id: Uuid, lease: Duration) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO instances (id, lease_until) VALUES ($1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until",
        id,
        lease.as_secs_f64()
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Forgets instances whose lease ended long ago.
pub async fn forget_dead(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM instances WHERE lease_until < now() - interval '1 day'").execute(pool).await.map(|_| ())
}
