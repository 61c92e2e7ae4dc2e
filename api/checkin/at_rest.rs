//! What each start does with the ticket keys before serving: seal what the
//! migration to derived codes left plain (a migration cannot know the server
//! key), and refuse to run without a key that something stored needs.

use uuid::Uuid;

use super::ticket_keys::TicketKeys;

#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error(
        "NTS_TICKET_KEY: ticket key {key_id} is not listed, but {events} event signing key(s) and {tickets} \
         ticket code(s) were made with it; list it again (after the newest key): without it their codes can \
         be neither shown nor signed"
    )]
    KeyMissing { key_id: String, events: i64, tickets: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Seals the seeds and ticket codes stored plain, with the newest key (once,
/// whichever instance gets there first), then checks that every key something
/// stored was made with is listed.
pub async fn prepare(pool: &sqlx::PgPool, keys: &TicketKeys) -> Result<(), AtRestError> {
    let (seeds, codes) = seal_plain(pool, keys).await?;
    if seeds + codes > 0 {
        tracing::info!(seeds, codes, "sealed the signing keys and ticket codes stored in plain text");
    }
    let missing = sqlx::query!(
        r#"SELECT key_id AS "key_id!", SUM(events)::int8 AS "events!", SUM(tickets)::int8 AS "tickets!"
           FROM (SELECT key_id, COUNT(*) AS events, 0 AS tickets FROM checkin_event_keys
                 WHERE key_id IS NOT NULL AND key_id <> ALL($1) GROUP BY key_id
                 UNION ALL
                 SELECT key_id, 0, COUNT(*) FROM tickets
                 WHERE key_id IS NOT NULL AND key_id <> ALL($1) GROUP BY key_id) k
           GROUP BY key_id ORDER BY key_id LIMIT 1"#,
        &keys.ids()
    )
    .fetch_optional(pool)
    .await?;
    match missing {
        Some(m) => Err(AtRestError::KeyMissing { key_id: hex::encode(m.key_id), events: m.events, tickets: m.tickets }),
        None => Ok(()),
    }
}

/// Answers how many seeds and codes it sealed.
async fn seal_plain(pool: &sqlx::PgPool, keys: &TicketKeys) -> Result<(u64, u64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let seeds = sqlx::query!(
        r#"SELECT event_id, secret_key AS "secret_key!" FROM checkin_event_keys
           WHERE secret_key IS NOT NULL FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    for seed in &seeds {
        let Ok(secret) = <[u8; 32]>::try_from(seed.secret_key.as_slice()) else { continue };
        let (sealed, key_id) = keys.seal_seed(seed.event_id, &secret);
        sqlx::query!(
            "UPDATE checkin_event_keys SET secret_key = NULL, sealed_secret = $2, key_id = $3 WHERE event_id = $1",
            seed.event_id,
            sealed,
            &key_id[..]
        )
        .execute(&mut *tx)
        .await?;
    }
    let codes = sqlx::query!(
        r#"SELECT event_id, id, legacy_code AS "legacy_code!" FROM tickets WHERE legacy_code IS NOT NULL FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let (mut events, mut ids, mut sealed, mut key_ids): (Vec<Uuid>, Vec<Uuid>, Vec<Vec<u8>>, Vec<Vec<u8>>) =
        Default::default();
    for c in &codes {
        let (s, k) = keys.seal_code(c.event_id, c.id, &c.legacy_code);
        events.push(c.event_id);
        ids.push(c.id);
        sealed.push(s);
        key_ids.push(k.to_vec());
    }
    if !codes.is_empty() {
        sqlx::query!(
            "UPDATE tickets t SET legacy_code = NULL, sealed_code = u.sealed, key_id = u.key_id
             FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::bytea[]) AS u(event_id, id, sealed, key_id)
             WHERE t.event_id = u.event_id AND t.id = u.id",
            &events,
            &ids,
            &sealed,
            &key_ids
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((seeds.len() as u64, codes.len() as u64))
}
