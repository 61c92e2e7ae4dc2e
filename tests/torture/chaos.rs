//! Faults from outside the servers: instances killed at random moments and
//! restarted, PostgreSQL restarted once. The schedule comes from the seed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::{restart_postgres, Cluster};
use crate::stats::Stats;

pub struct Schedule {
    pub seed: u64,
    pub kill_every: Option<Duration>,
    /// The cluster to restart, and when (from the start of the load).
    pub pg_restart: Option<(String, Duration)>,
}

/// Runs until `stop`, then waits for every restart it began.
pub async fn run(cluster: Arc<Cluster>, stats: Arc<Stats>, schedule: Schedule, mut stop: watch::Receiver<bool>) {
    let mut rng = StdRng::seed_from_u64(schedule.seed ^ 0x00C4_A05C_4A05);
    let start = Instant::now();
    let next = |rng: &mut StdRng, every: Duration| Instant::now() + every.mul_f64(rng.gen_range(0.5..1.5));
    let mut next_kill = schedule.kill_every.map(|every| next(&mut rng, every));
    let mut pg_restart = schedule.pg_restart;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => break,
        }
        if let (Some(at), Some(every)) = (next_kill, schedule.kill_every) {
            if Instant::now() >= at {
                next_kill = Some(next(&mut rng, every));
                let up = cluster.up();
                // Keep one instance serving, like a load balancer with a healthy backend left.
                if up.len() > 1 || (cluster.len() == 1 && !up.is_empty()) {
                    let i = up[rng.gen_range(0..up.len())];
                    if cluster.kill(i) {
                        stats.kills.bump();
                        let delay = Duration::from_millis(rng.gen_range(200..1500));
                        let (cluster, stats) = (cluster.clone(), stats.clone());
                        tasks.spawn(async move {
                            tokio::time::sleep(delay).await;
                            match cluster.ensure_up(i).await {
                                Ok(()) => stats.restarts.bump(),
                                Err(e) => eprintln!("  ! {e:#}"),
                            }
                        });
                    }
                }
            }
        }
        if pg_restart.as_ref().is_some_and(|(_, at)| start.elapsed() >= *at) {
            let (name, _) = pg_restart.take().expect("checked");
            let stats = stats.clone();
            tasks.spawn(async move {
                println!("  ! restarting PostgreSQL ({name})");
                match tokio::task::spawn_blocking(move || restart_postgres(&name)).await {
                    Ok(Ok(took)) => {
                        stats.pg_restarts.bump();
                        println!("  ! PostgreSQL restarted in {:.1} s", took.as_secs_f64());
                    }
                    Ok(Err(e)) => eprintln!("  ! {e:#}"),
                    Err(e) => eprintln!("  ! PostgreSQL restart task failed: {e}"),
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}
