//! Runs the real `nts` binary (for signals, startup checks and its logs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{ADMIN_TOKEN, TICKET_KEY};

pub struct NtsProcess {
    pub child: Child,
    pub port: u16,
    /// Everything the process wrote to stdout and stderr so far (its log), without colours.
    pub log: Arc<Mutex<String>>,
    /// What it wrote to stdout alone, as written.
    pub stdout: Arc<Mutex<String>>,
}

/// The environment every spawned nts gets unless `env` overrides it.
fn base_env(database_url: &str) -> Vec<(String, String)> {
    [
        ("NTS_ADDRESS", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("NTS_ADMIN_TOKEN", ADMIN_TOKEN),
        ("NTS_TICKET_KEY", TICKET_KEY),
        ("NTS_PAYMENTS", "simulated"),
        ("NTS_DEMO", "false"),
        ("NTS_RATE_LIMIT_PER_MINUTE", "0"),
        ("NTS_READ_RATE_LIMIT_PER_MINUTE", "0"),
        ("NTS_MAX_UNPAID_PER_ADDRESS", "0"),
        ("NTS_RECONCILE_MS", "200"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `NTS_BIN` when set (tests/run.sh sets it), else `nts` built once by cargo into
/// the target directory and profile of the running test.
pub fn nts_binary() -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    if let Ok(bin) = std::env::var("NTS_BIN") {
        return bin;
    }
    BUILT.get_or_init(build_nts).clone()
}

/// Tests of another package cannot name nts's binary (`CARGO_BIN_EXE_*` is per
/// package), so they build it: cargo makes nothing if it is fresh.
fn build_nts() -> String {
    let exe = std::env::current_exe().expect("the test's own path");
    // <target>/<profile>/deps/<test>
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test runs from a cargo target directory");
    let target_dir = profile_dir.parent().expect("a target directory");
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--quiet", "-p", "nts", "--bin", "nts", "--manifest-path"]).arg(&manifest);
    cargo.arg("--target-dir").arg(target_dir);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building nts failed");
    let bin: PathBuf = profile_dir.join(format!("nts{}", std::env::consts::EXE_SUFFIX));
    bin.to_str().expect("a UTF-8 path").to_owned()
}

pub fn command(database_url: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(nts_binary());
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in base_env(database_url) {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Simulated payments unless the test configures Stripe.
    if env.iter().any(|(k, _)| k.starts_with("NTS_STRIPE_")) {
        cmd.env_remove("NTS_PAYMENTS");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

impl NtsProcess {
    /// Starts nts and waits until it logs the port it serves on.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_command(command(database_url, env))
    }

    /// Starts `cmd` (see [`command`]) and waits until it logs the port it serves on.
    pub fn start_command(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("nts starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let stdout_only = Arc::new(Mutex::new(String::new()));
        for (stream, only) in [(stdout, Some(stdout_only.clone())), (stderr, None)] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(only) = &only {
                        let mut only = only.lock().unwrap();
                        only.push_str(&line);
                        only.push('\n');
                    }
                    let mut log = sink.lock().unwrap();
                    log.push_str(&strip_colours(&line));
                    log.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let text = log.lock().unwrap().clone();
            if let Some(port) = text.lines().find(|l| l.contains("nts is serving")).and_then(|l| {
                // `port=1234` in text logs, `"port":1234` in JSON ones.
                let rest = l.find("port=").map(|i| &l[i + 5..]).or_else(|| l.find("\"port\":").map(|i| &l[i + 7..]))?;
                rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            }) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nts exited with {status} before serving:\n{text}");
            }
            assert!(Instant::now() < deadline, "nts did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        NtsProcess { child, port, log, stdout: stdout_only }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A client of this process's API.
    pub fn api(&self) -> crate::Client {
        crate::Client::new(reqwest::Client::new(), self.url(""), ADMIN_TOKEN)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; answers its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "nts did not exit within {within:?}:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NtsProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
