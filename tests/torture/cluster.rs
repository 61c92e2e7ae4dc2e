//! The nts processes under test, each on its own local port, and the way
//! they die: SIGKILL (`Child::kill`), then a restart on the same port.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Cluster {
    nts: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    slots: Vec<Mutex<Slot>>,
    http: reqwest::Client,
}

struct Slot {
    port: u16,
    child: Option<Child>,
}

impl Cluster {
    /// Picks free ports; starts nothing yet.
    pub fn new(nts: &Path, env: Vec<(String, String)>, logs: PathBuf, instances: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let slots = (0..instances)
            .map(|_| Ok(Mutex::new(Slot { port: free_port()?, child: None })))
            .collect::<anyhow::Result<_>>()?;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(500)).build()?;
        Ok(Cluster { nts: nts.to_owned(), env, logs, slots, http })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.slots.iter().map(|s| s.lock().unwrap().port).collect()
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Instances whose process is running (it may still be starting).
    pub fn up(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|&i| self.is_running(i)).collect()
    }

    fn is_running(&self, i: usize) -> bool {
        let mut slot = self.slots[i].lock().unwrap();
        match slot.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                slot.child = None;
                false
            }
            None => false,
        }
    }

    /// SIGKILL, no warning; answers whether a process was running.
    pub fn kill(&self, i: usize) -> bool {
        let mut slot = self.slots[i].lock().unwrap();
        let Some(mut child) = slot.child.take() else { return false };
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    pub fn stop_all(&self) {
        for i in 0..self.slots.len() {
            self.kill(i);
        }
    }

    /// Starts instance `i` unless it runs, retrying while it cannot start
    /// (PostgreSQL may be restarting), until it answers HTTP.
    pub async fn ensure_up(&self, i: usize) -> anyhow::Result<()> {
        let mut last = None;
        for _ in 0..15 {
            if self.is_running(i) {
                return Ok(());
            }
            match self.start(i).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.kill(i);
                    last = Some(e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("unknown"))).with_context(|| format!("starting nts instance {i}"))
    }

    async fn start(&self, i: usize) -> anyhow::Result<()> {
        let port = {
            let mut slot = self.slots[i].lock().unwrap();
            if let Some(Ok(None)) = slot.child.as_mut().map(Child::try_wait) {
                return Ok(()); // another restart got there first
            }
            let log_path = self.logs.join(format!("instance-{i}.log"));
            let log = OpenOptions::new().create(true).append(true).open(&log_path)?;
            let mut cmd = Command::new(&self.nts);
            for (name, _) in std::env::vars() {
                if name.starts_with("NTS_") || name == "DATABASE_URL" {
                    cmd.env_remove(name);
                }
            }
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
                .env("NTS_ADDRESS", format!("127.0.0.1:{}", slot.port))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            slot.child = Some(cmd.spawn().with_context(|| format!("running {}", self.nts.display()))?);
            slot.port
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !self.is_running(i) {
                bail!(
                    "instance {i} exited during startup (see {})",
                    self.logs.join(format!("instance-{i}.log")).display()
                );
            }
            if self.http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("instance {i} did not answer within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Counts the lines of the servers' logs that report errors or panics.
    pub fn log_problems(&self) -> (usize, usize) {
        let (mut errors, mut panics) = (0, 0);
        for i in 0..self.slots.len() {
            let text = std::fs::read_to_string(self.logs.join(format!("instance-{i}.log"))).unwrap_or_default();
            errors += text.lines().filter(|l| l.contains(" ERROR ")).count();
            panics += text.lines().filter(|l| l.contains("panicked")).count();
        }
        (errors, panics)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The local cluster `pg_ctlcluster` can restart: the newest version in /etc/postgresql, `main`.
pub fn find_pg_cluster() -> anyhow::Result<String> {
    let version = std::fs::read_dir("/etc/postgresql")
        .context("reading /etc/postgresql to find the cluster to restart (pass --pg-cluster or --no-pg-restart)")?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|v| Some((v.parse::<f64>().ok()?, v)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
        .context("no cluster in /etc/postgresql (pass --pg-cluster or --no-pg-restart)")?;
    Ok(format!("{version}/main"))
}

/// `pg_ctlcluster … restart`: a fast shutdown (clients are disconnected) and a start.
pub fn restart_postgres(cluster: &str) -> anyhow::Result<Duration> {
    let (version, name) = cluster.split_once('/').context("--pg-cluster must look like 15/main")?;
    let started = Instant::now();
    let out = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, name, "restart"])
        .output()
        .context("running pg_ctlcluster (pass --no-pg-restart where PostgreSQL is not a local cluster)")?;
    if !out.status.success() {
        bail!("pg_ctlcluster {cluster} restart failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(started.elapsed())
}
