//! Test support: a fresh database with nts's schema per test (the test kit's), dropped afterwards.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::status::{HoldStatus, PaymentStatus};

pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    _db: nts_testkit::TestDb,
}

impl TestDb {
    pub async fn new() -> Self {
        let db = nts_testkit::TestDb::create().await.expect("test database");
        let pool = crate::db::connect(&db.url, 10).await.expect("test database");
        TestDb { url: db.url.clone(), pool, _db: db }
    }

    /// An event with one ticket type; answers (event, ticket type).
    pub async fn event(&self, capacity: i32, max_per_order: i32, starts_in_secs: f64) -> (Uuid, Uuid) {
        let (event, ticket_type) = (Uuid::new_v4(), Uuid::new_v4());
        sqlx::query!(
            "INSERT INTO events (id, name, venue, starts_at, currency)
             VALUES ($1, 'Batch test', 'Here', now() + make_interval(secs => $2), 'GBP')",
            event,
            starts_in_secs
        )
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query!(
            "INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order)
             VALUES ($1, $2, 0, 'General', 1500, $3, $4)",
            ticket_type,
            event,
            capacity,
            max_per_order
        )
        .execute(&self.pool)
        .await
        .unwrap();
        (event, ticket_type)
    }

    /// One more ticket type (at 7.00) of `event`.
    pub async fn ticket_type(&self, event: Uuid, position: i32, capacity: i32) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query!(
            "INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order)
             VALUES ($1, $2, $3, 'Child', 700, $4, 10)",
            id,
            event,
            position,
            capacity
        )
        .execute(&self.pool)
        .await
        .unwrap();
        id
    }

    /// (held, active holds) of a ticket type.
    pub async fn counters(&self, ticket_type: Uuid) -> (i32, i64) {
        let r = sqlx::query!(
            r#"SELECT t.held, (SELECT COUNT(*) FROM holds h JOIN hold_lines l ON l.hold_id = h.id
                                WHERE l.ticket_type_id = t.id AND h.status = 'active') AS "active!"
               FROM ticket_types t WHERE t.id = $1"#,
            ticket_type
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (r.held, r.active)
    }

    /// A hold of `lines` (ticket type, quantity) at `unit_price_minor` a
    /// seat, in `status`, live for `live_secs`, opened by `secret_hash`; its
    /// seats are counted as held. Answers its id.
    pub async fn hold(
        &self,
        event: Uuid,
        lines: &[(Uuid, i32)],
        unit_price_minor: i64,
        status: HoldStatus,
        live_secs: f64,
        secret_hash: &[u8],
    ) -> Uuid {
        let id = Uuid::new_v4();
        let total: i32 = lines.iter().map(|(_, q)| q).sum();
        sqlx::query(
            "INSERT INTO holds (id, secret_hash, event_id, buyer_name, buyer_email, quantity, amount_minor, currency,
                                expires_at, status)
             VALUES ($1, $2, $3, 'Ada', 'ada@example.com', $4, $4 * $5, 'GBP', now() + make_interval(secs => $6), $7)",
        )
        .bind(id)
        .bind(secret_hash)
        .bind(event)
        .bind(total)
        .bind(unit_price_minor)
        .bind(live_secs)
        .bind(status)
        .execute(&self.pool)
        .await
        .unwrap();
        for (position, (ticket_type, quantity)) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO hold_lines (hold_id, ticket_type_id, position, quantity, unit_price_minor)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(ticket_type)
            .bind(position as i32)
            .bind(quantity)
            .bind(unit_price_minor)
            .execute(&self.pool)
            .await
            .unwrap();
            sqlx::query("UPDATE ticket_types SET held = held + $2 WHERE id = $1")
                .bind(ticket_type)
                .bind(quantity)
                .execute(&self.pool)
                .await
                .unwrap();
        }
        id
    }

    /// An order awaiting payment of `lines`, opened by the secret hash
    /// `\x01` (its hold's seats counted as held), with one attempt per status
    /// of `attempts`; answers (order, attempts).
    pub async fn order(&self, event: Uuid, lines: &[(Uuid, i32)], attempts: &[PaymentStatus]) -> (Uuid, Vec<Uuid>) {
        let order = Uuid::new_v4();
        let hold = self.hold(event, lines, 0, HoldStatus::CheckedOut, 3600.0, b"\0").await;
        let total: i32 = lines.iter().map(|(_, q)| q).sum();
        sqlx::query(
            "INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email, quantity, amount_minor,
                                 currency, expires_at)
             VALUES ($1, '\\x01', $2, $3, 'Ada', 'ada@example.com', $4, 0, 'GBP', now() + interval '1 hour')",
        )
        .bind(order)
        .bind(hold)
        .bind(event)
        .bind(total)
        .execute(&self.pool)
        .await
        .unwrap();
        let mut ids = Vec::new();
        for status in attempts {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO payments (id, order_id, provider, idempotency_key, amount_minor, currency, status)
                 VALUES ($1, $2, 'simulated', $3, 0, 'GBP', $4)",
            )
            .bind(id)
            .bind(order)
            .bind(format!("nts-pay-{id}"))
            .bind(*status)
            .execute(&self.pool)
            .await
            .unwrap();
            ids.push(id);
        }
        (order, ids)
    }

    /// From now on, a statement that `operation`s (`INSERT`, `UPDATE`) more
    /// than one row of `table` fails: every batch does, its members alone do not.
    pub async fn refuse_batches(&self, table: &str, operation: &str) {
        sqlx::query(
            "CREATE OR REPLACE FUNCTION one_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF (SELECT COUNT(*) FROM new_rows) > 1 THEN RAISE EXCEPTION 'batch refused'; END IF;
                 RETURN NULL;
             END $$",
        )
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query(&format!(
            "CREATE TRIGGER one_at_a_time_{table} AFTER {operation} ON {table} REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION one_at_a_time()"
        ))
        .execute(&self.pool)
        .await
        .unwrap();
    }
}
