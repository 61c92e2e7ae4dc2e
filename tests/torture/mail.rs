//! `--smtp`: the nts processes send their e-mails to a real SMTP server
//! (aiosmtpd, tests/mail/server.py); at the end every paid order must have
//! had its confirmation accepted by that server. Without `--smtp` the outbox
//! still fills, and every paid order must at least have its e-mail queued.

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use crate::audit::Check;

const DOMAIN: &str = "nts.torture";

pub struct MailRig {
    child: Child,
    pub smtp_port: u16,
    http: String,
}

impl MailRig {
    /// Starts the SMTP server from `dir` (tests/mail, set up by its setup.sh).
    pub fn start(dir: &Path, log: &Path) -> anyhow::Result<Self> {
        let (child, ports) = crate::helper_server::start(dir, "--smtp-dir", "server.py", log)?;
        Ok(MailRig {
            child,
            smtp_port: ports["smtp"].as_u64().context("smtp port")? as u16,
            http: format!("http://127.0.0.1:{}", ports["http"]),
        })
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("NTS_SMTP_URL", format!("smtp://127.0.0.1:{}?tls=none", self.smtp_port)),
            ("NTS_MAIL_FROM", format!("Torture <tickets@{DOMAIN}>")),
            ("NTS_PUBLIC_URL", "http://shop.nts.torture".into()),
            ("NTS_MAIL_KEY", "torture-mail-key-0123456789abcdef01".into()),
            ("NTS_MAIL_POLL_MS", "200".into()),
            ("NTS_MAIL_RETRY_MS", "200".into()),
            ("NTS_MAIL_RETRY_MAX_MS", "2000".into()),
            ("NTS_MAIL_MAX_ATTEMPTS", "1000".into()),
            // A SIGKILLed sender's e-mail is taken over this long after its claim.
            ("NTS_MAIL_LEASE_SECONDS", "10".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn received(&self) -> anyhow::Result<Vec<String>> {
        Ok(reqwest::get(format!("{}/message-ids", self.http)).await?.json().await?)
    }
}

impl Drop for MailRig {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most `timeout`) until no e-mail is waiting or being sent.
pub async fn drain(pool: &PgPool, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let open: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE status IN ('pending', 'sending')")
                .fetch_one(pool)
                .await;
        if open.is_ok_and(|n| n == 0) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// The e-mail checks, and for the report: (e-mails received, of them received more than once).
pub async fn checks(pool: &PgPool, rig: Option<&MailRig>) -> anyhow::Result<(Vec<Check>, Option<(usize, usize)>)> {
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await };
    let mut checks = vec![Check {
        name: "paid orders without a queued e-mail".into(),
        value: count(
            "SELECT count(*) FROM orders o WHERE o.status IN ('paid', 'refunded') AND NOT EXISTS
               (SELECT 1 FROM mail_outbox m WHERE m.order_id = o.id AND m.kind = 'order_paid')",
        )
        .await?,
        detail: String::new(),
    }];
    let Some(rig) = rig else { return Ok((checks, None)) };
    checks.push(Check {
        name: "paid orders without a sent e-mail".into(),
        value: count(
            "SELECT count(*) FROM orders o WHERE o.status IN ('paid', 'refunded') AND NOT EXISTS
               (SELECT 1 FROM mail_outbox m WHERE m.order_id = o.id AND m.kind = 'order_paid' AND m.status = 'sent')",
        )
        .await?,
        detail: String::new(),
    });
    let received = rig.received().await?;
    let distinct: HashSet<&String> = received.iter().collect();
    let sent: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM mail_outbox WHERE status = 'sent'").fetch_all(pool).await?;
    let missing = sent.iter().filter(|id| !distinct.contains(&format!("<{id}@{DOMAIN}>"))).count();
    checks.push(Check {
        name: "e-mails sent that the SMTP server never got".into(),
        value: missing as i64,
        detail: String::new(),
    });
    Ok((checks, Some((received.len(), received.len() - distinct.len()))))
}
