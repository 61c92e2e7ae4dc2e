//! The baseline: pgbench running the minimal hold transaction on one hot row
//! (tests/bench/hot_row.sql) against nts's own schema, one hold per transaction.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::db::{self, ScratchDb};

const SETUP_SQL: &str = include_str!("hot_row_setup.sql");
const HOT_ROW_SQL: &str = include_str!("hot_row.sql");

pub struct Figure {
    pub clients: u32,
    /// `Err` says why there is no figure (on a shared server: connection slots used up, connections ended).
    pub tps: Result<f64, String>,
}

/// Tries before giving up on a client count.
const ATTEMPTS: u32 = 3;

pub async fn run(
    server_url: &str,
    client_counts: &[u32],
    each: Duration,
    work_dir: &std::path::Path,
) -> anyhow::Result<Vec<Figure>> {
    let scratch = ScratchDb::create(server_url, "pgbench").await?;
    let result = measure(&scratch, client_counts, each, work_dir).await;
    scratch.drop_now().await;
    result
}

async fn measure(
    scratch: &ScratchDb,
    client_counts: &[u32],
    each: Duration,
    work_dir: &std::path::Path,
) -> anyhow::Result<Vec<Figure>> {
    sqlx::raw_sql(SETUP_SQL).execute(&scratch.pool).await.context("tests/bench/hot_row_setup.sql")?;
    let script = work_dir.join("hot_row.sql");
    std::fs::write(&script, HOT_ROW_SQL)?;
    let mut figures = Vec::new();
    for &clients in client_counts {
        let mut tps = Err(String::new());
        for attempt in 1..=ATTEMPTS {
            db::vacuum_analyze(&scratch.pool).await?;
            let out = Command::new("pgbench")
                .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
                .args(["-T", &each.as_secs().max(1).to_string(), "-f"])
                .arg(&script)
                .arg(&scratch.url)
                .output()
                .context("running pgbench (it comes with the PostgreSQL server: Debian package postgresql-15)")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                tps = parse_tps(&stdout)
                    .with_context(|| format!("no tps in pgbench output:\n{stdout}"))
                    .map_err(|e| e.to_string());
                break;
            }
            // On a shared server other people's work can refuse or end our connections; try again.
            let why =
                stderr.lines().rev().find(|l| l.contains("FATAL") || l.contains("error")).unwrap_or("pgbench failed");
            tps = Err(format!("{} (attempt {attempt} of {ATTEMPTS})", why.trim()));
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        figures.push(Figure { clients, tps });
    }
    Ok(figures)
}

/// `tps = 1234.56 (without initial connection time)`
fn parse_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_pgbench_tps() {
        let out = "latency average = 1.234 ms\ninitial connection time = 3.2 ms\ntps = 812.345678 (without initial connection time)\n";
        assert_eq!(super::parse_tps(out), Some(812.345678));
        assert_eq!(super::parse_tps("nothing"), None);
    }
}
