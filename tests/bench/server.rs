//! nts instances under test: spawned `nts` processes from the same target
//! directory, each on its own port, all on one database.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::Method;

use crate::http::{Conn, Reply};

pub struct Instance {
    pub addr: SocketAddr,
    pub child: Child,
    pub log: PathBuf,
}

/// `nts` next to this binary (`cargo build --bins` puts both there).
pub fn default_nts_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nts-bench"));
    exe.with_file_name("nts")
}

pub async fn spawn(
    nts: &Path,
    database_url: &str,
    admin_token: &str,
    env: &[(String, String)],
    log_dir: &Path,
    index: usize,
) -> anyhow::Result<Instance> {
    // Ask the OS for a free port; the tiny window before nts binds it again is harmless here.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = log_dir.join(format!("nts-{index}.log"));
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(nts)
        .env("DATABASE_URL", database_url)
        .env("NTS_ADDRESS", addr.to_string())
        .env("NTS_ADMIN_TOKEN", admin_token)
        .env("NTS_PAYMENTS", "simulated")
        .env("NTS_DEMO", "false")
        // Every client of the load comes from 127.0.0.1 and holds again and
        // again: the hoarding cap would refuse the load.
        .env("NTS_MAX_UNPAID_PER_ADDRESS", "0")
        // One access-log line per request would measure the log file, not the sale.
        .env("RUST_LOG", "info,nts::access=off")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {} (build it with `cargo build --release --bins`)", nts.display()))?;
    let mut instance = Instance { addr, child, log };
    instance.wait_healthy().await?;
    Ok(instance)
}

impl Instance {
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = Conn::new(self.addr);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("nts exited with {status} before serving; see {}", self.log.display());
            }
            if let Reply::Answer { status, .. } = conn.send(Method::GET, "/healthz", None, None, None).await {
                if status.is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("nts did not become healthy within 30 s; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the instance the way an operator would (SIGTERM), then makes sure it is gone.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident set size of a process in bytes (VmHWM).
pub fn peak_rss(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:").map(|kb| kb * 1024)
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / clock_ticks_per_second()))
}

pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // USER_HZ is 100 on every Linux this runs on; `getconf` confirms it when available.
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
