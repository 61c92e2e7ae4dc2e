//! A real SMTP server (aiosmtpd, tests/mail/server.py) per test: it stores
//! what it receives and takes faults (refuse, drop mid-DATA, slow).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub struct MailServer {
    child: Child,
    pub smtp_port: u16,
    http: String,
    client: reqwest::Client,
}

/// Installs aiosmtpd (tests/mail/setup.sh) once per test run if it is missing.
fn python() -> String {
    static SETUP: Mutex<bool> = Mutex::new(false);
    let mut done = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        let status =
            Command::new("bash").arg(format!("{ROOT}/tests/mail/setup.sh")).status().expect("run tests/mail/setup.sh");
        assert!(status.success(), "tests/mail/setup.sh failed: aiosmtpd is needed for the e-mail tests");
        *done = true;
    }
    format!("{ROOT}/tests/mail/.venv/bin/python")
}

impl MailServer {
    pub fn start() -> MailServer {
        let mut child = Command::new(python())
            .arg(format!("{ROOT}/tests/mail/server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/mail/server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("mail server ports");
        let ports: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("mail server did not start: {line:?}"));
        MailServer {
            child,
            smtp_port: ports["smtp"].as_u64().unwrap() as u16,
            http: format!("http://127.0.0.1:{}", ports["http"]),
            client: reqwest::Client::new(),
        }
    }

    /// What nts is configured with: plain SMTP on the loopback.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.smtp_port)
    }

    /// Settings for an nts that sends here quickly (short poll, short backoff, many attempts).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NTS_SMTP_URL", self.smtp_url()),
            ("NTS_MAIL_FROM", "Test Tickets <tickets@nts.test>".into()),
            ("NTS_PUBLIC_URL", "http://shop.nts.test".into()),
            ("NTS_MAIL_KEY", "test-mail-key-0123456789abcdef0123".into()),
            ("NTS_MAIL_POLL_MS", "100".into()),
            ("NTS_MAIL_RETRY_MS", "100".into()),
            ("NTS_MAIL_RETRY_MAX_MS", "1000".into()),
            ("NTS_MAIL_MAX_ATTEMPTS", "1000".into()),
        ]
    }

    pub async fn messages(&self) -> Vec<Value> {
        let res = self.client.get(format!("{}/messages", self.http)).send().await.expect("mail server answers");
        res.json::<Vec<Value>>().await.unwrap()
    }

    pub async fn state(&self) -> Value {
        self.client.get(format!("{}/state", self.http)).send().await.unwrap().json().await.unwrap()
    }

    /// `{"refuse": bool, "drop_data": n, "slow_ms": ms}`.
    pub async fn faults(&self, spec: Value) {
        let res = self.client.post(format!("{}/faults", self.http)).json(&spec).send().await.unwrap();
        assert!(res.status().is_success(), "faults: {}", res.status());
    }

    /// Waits until at least `n` messages arrived; answers all of them.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let messages = self.messages().await;
            if messages.len() >= n {
                return messages;
            }
            assert!(Instant::now() < deadline, "{} of {n} e-mails arrived within {secs} s", messages.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn up(&self) {
        self.faults(json!({"refuse": false})).await;
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
