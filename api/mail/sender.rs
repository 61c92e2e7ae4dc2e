//! The sender, in every instance: claims due outbox rows under a lease (so a
//! sender that dies mid-send is replaced once its lease ends, and two senders
//! never hold one row), sends through SMTP, and records the outcome. Delivery
//! is at least once: a crash after the SMTP server took a message and before
//! it was recorded sends it again, with the same `Message-ID`.

use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::outbox::{self, Claimed, MailStatus};
use super::{content, message};
use crate::checkin::ticket_keys::TicketKeys;
use crate::config::MailSettings;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Sends until `stop` says so.
/// `ticket_keys` give the tickets' codes for their QR codes.
pub async fn run(pool: PgPool, settings: MailSettings, ticket_keys: TicketKeys, mut stop: watch::Receiver<bool>) {
    let (Some(url), Some(from)) = (settings.smtp_url.clone(), settings.from.clone()) else {
        report_unsent(pool, settings, stop).await;
        return;
    };
    let transport = match Transport::from_url(&url) {
        Ok(builder) => builder.timeout(Some((settings.lease / 3).max(Duration::from_secs(1)))).build(),
        Err(e) => {
            tracing::error!(error = %e, "the SMTP settings cannot be used; no e-mail is sent");
            return;
        }
    };
    let owner = Uuid::new_v4();
    tracing::info!(%owner, "e-mail sender started");
    loop {
        if *stop.borrow() {
            return;
        }
        match outbox::claim(&pool, owner, settings.lease).await {
            Ok(Some(job)) => {
                // Stopping does not wait for a slow server: the row's lease runs out and it is sent again.
                tokio::select! {
                    _ = send(&pool, &settings, &ticket_keys, &transport, &from, owner, job) => continue,
                    _ = stop.changed() => return,
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "e-mail sender: cannot read the outbox"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn send(
    pool: &PgPool,
    settings: &MailSettings,
    ticket_keys: &TicketKeys,
    transport: &Transport,
    from: &lettre::message::Mailbox,
    owner: Uuid,
    job: Claimed,
) {
    let outcome = async {
        let public_url = settings.public_url.as_deref();
        let mail = content::load(pool, ticket_keys, job.order_id, public_url, settings.link_key.as_ref())
            .await
            .map_err(|e| (true, format!("reading the order: {e}")))?
            .ok_or((false, "the order no longer exists".to_owned()))?;
        let message =
            message::build(job.id, job.kind, &mail, from, &job.recipient).map_err(|problem| (false, problem))?;
        // Within the lease, whatever the server does: past it another sender may take the row.
        match tokio::time::timeout(settings.lease / 2, transport.send(message)).await {
            Ok(sent) => sent.map_err(|e| (true, e.to_string())),
            Err(_) => Err((true, "the SMTP server took too long".to_owned())),
        }
    }
    .await;
    let recorded = match outcome {
        Ok(_) => outbox::mark_sent(pool, job.id, owner).await.map(|_| {
            tracing::info!(outbox_id = %job.id, order_id = %job.order_id, kind = ?job.kind, "e-mail sent");
        }),
        Err((retry, error)) => {
            let max = if retry { settings.max_attempts } else { 0 };
            let wait = outbox::backoff(job.attempts, settings.retry_first, settings.retry_max);
            outbox::mark_failed_attempt(pool, job.id, owner, &error, wait, max).await.map(|status| {
                if status == MailStatus::Failed {
                    tracing::error!(outbox_id = %job.id, order_id = %job.order_id, attempts = job.attempts, %error,
                        "e-mail failed for good; an admin can retry it");
                } else {
                    tracing::warn!(outbox_id = %job.id, order_id = %job.order_id, attempts = job.attempts, %error,
                        retry_in_ms = wait.as_millis() as u64, "e-mail not sent; will retry");
                }
            })
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and another attempt (maybe a duplicate, same Message-ID) follows.
        tracing::warn!(outbox_id = %job.id, error = %e, "could not record an e-mail's outcome");
    }
}

/// Without SMTP the outbox still fills: say so whenever what waits changes.
async fn report_unsent(pool: PgPool, settings: MailSettings, mut stop: watch::Receiver<bool>) {
    tracing::warn!("NTS_SMTP_URL is not set: e-mails are kept in the outbox and not sent");
    let mut last = -1;
    loop {
        if *stop.borrow() {
            return;
        }
        if let Ok(Some(waiting)) =
            sqlx::query_scalar!("SELECT count(*) FROM mail_outbox WHERE status = $1", MailStatus::Pending as MailStatus)
                .fetch_one(&pool)
                .await
        {
            if waiting != last {
                tracing::warn!(waiting, "e-mails not sent: no SMTP server is configured (NTS_SMTP_URL)");
                last = waiting;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll.max(Duration::from_secs(5))) => {}
            _ = stop.changed() => {}
        }
    }
}
