//! A database dump lets nobody in (issue 34): ticket codes are derived with
//! `NTS_TICKET_KEY` and stored hashed, the events' signing keys are sealed with
//! it, a ticket issued now goes in only signed, tickets issued before keep
//! their codes, and the key rotates.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use nts_testkit::process::command;
use nts_testkit::wire::{NewCheckin, SimulatedOutcome};
use nts_testkit::{spawn_app, spawn_app_with, ApiResult, Expect, TestApp, TestDb};
use uuid::Uuid;

async fn scan(app: &TestApp, token: &str, code: &str) -> ApiResult<nts_testkit::wire::Checkin> {
    app.api().check_in(token, &NewCheckin { code: code.to_owned(), scan_id: Uuid::new_v4() }).await
}

/// What a gate checks offline: the event's signature of `ticket` (see `GateState.public_key`).
fn message(event: Uuid, ticket: &str) -> Vec<u8> {
    [b"nts-ticket:v1:".as_slice(), event.as_bytes(), ticket.as_bytes()].concat()
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// Every value of every row of the tables a dump would give away, as text
/// (bytes as `\x…` hex), and every byte string among them.
async fn dump(app: &TestApp) -> (Vec<String>, Vec<Vec<u8>>) {
    let values: Vec<String> = sqlx::query_scalar(
        "SELECT e.v FROM (SELECT to_jsonb(t) AS r FROM tickets t
                          UNION ALL SELECT to_jsonb(k) FROM checkin_event_keys k
                          UNION ALL SELECT to_jsonb(s) FROM checkin_scans s) x,
                         jsonb_each_text(x.r) AS e(k, v)
         WHERE e.v IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let bytes = values.iter().filter_map(|v| unhex(v.strip_prefix("\\x")?)).collect();
    (values, bytes)
}

#[tokio::test]
async fn no_column_of_a_dump_holds_a_code_the_door_accepts_or_a_seed_that_signs_one() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 2).await;
    let gate = app.api().create_device(event, "Gate").await.unwrap().body.token;
    scan(&app, &gate, &order.tickets[1].signed_code).await.unwrap();
    let public_key = URL_SAFE_NO_PAD.decode(app.api().gate_state(&gate).await.unwrap().body.public_key).unwrap();
    let public_key = VerifyingKey::from_bytes(&public_key.try_into().unwrap()).unwrap();
    let (values, bytes) = dump(&app).await;
    assert!(values.len() > 10, "{values:?}");

    let ticket = &order.tickets[0];
    for value in values.iter().cloned().chain(bytes.iter().map(|b| URL_SAFE_NO_PAD.encode(b))) {
        assert!(!value.contains(&ticket.code), "the dump holds a ticket's code: {value}");
        // Whatever the value, the door takes it for no ticket.
        let answer = scan(&app, &gate, &value).await;
        assert!(answer.is_err(), "the door accepted {value} from the dump");
    }
    // No 32 bytes of the dump are the seed that signs the event's codes: not
    // for a real ticket online, not for a made-up one at an offline gate.
    let made_up = "AAAAAAAAAAAAAAAAAAAAAAAA";
    for seed in bytes.iter().filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok()) {
        let key = SigningKey::from_bytes(&seed);
        let minted = key.sign(&message(event, made_up));
        assert!(public_key.verify(&message(event, made_up), &minted).is_err(), "a seed in the dump signs codes");
        let forged =
            format!("{}.{}", ticket.code, URL_SAFE_NO_PAD.encode(key.sign(&message(event, &ticket.code)).to_bytes()));
        scan(&app, &gate, &forged).await.expect_error(404, "unknown_ticket");
    }
    // The ticket itself still goes in, signed.
    scan(&app, &gate, &ticket.signed_code).await.unwrap();
}

#[tokio::test]
async fn a_new_tickets_bare_code_is_refused_and_its_signed_code_admits() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 1).await;
    let gate = app.api().create_device(event, "Gate").await.unwrap().body.token;
    let refused = scan(&app, &gate, &order.tickets[0].code).await.expect_error(422, "signed_code_required");
    assert!(refused.message.contains("QR code"), "{refused:?}");
    let admitted = scan(&app, &gate, &order.tickets[0].signed_code).await.unwrap().body;
    assert_eq!(admitted.ticket, order.tickets[0].code);
}

const OLD: &str = "the-ticket-key-before-rotation-0123456789";
const NEW: &str = "the-ticket-key-after-rotation-01234567890";

#[tokio::test]
async fn after_rotation_old_tickets_keep_their_codes_and_new_ones_use_the_new_key() {
    let mut app = spawn_app_with(&[("NTS_TICKET_KEY", OLD)]).await;
    let (event, tt) = app.simple_event(10, 4).await;
    let before = app.buy(event, tt, 1).await;
    let gate = app.api().create_device(event, "Gate").await.unwrap().body.token;
    let key_ids = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT key_id FROM tickets ORDER BY key_id")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };

    // The new key in front, the old one kept.
    app.stop_instance(0).await;
    app.settings.insert("NTS_TICKET_KEY".into(), format!("{NEW},{OLD}"));
    app.start_instance().await;
    let c = app.checkout(event, tt, 1).await;
    let order_secret = c.order.secret.clone().unwrap();
    app.confirm(c.payment.unwrap().id, &order_secret, SimulatedOutcome::Succeeded).await.expect_status(200);
    let after = app.api().order(c.order.id, &order_secret).await.unwrap().body;
    assert_ne!(after.tickets[0].code, before.tickets[0].code);
    let ids = key_ids(&app).await;
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "the new ticket's code is made with the new key");
    // The old ticket's code and QR are the same, and both tickets go in.
    let gate_state = app.api().gate_state(&gate).await.unwrap().body;
    assert_eq!(gate_state.sold, 2);
    scan(&app, &gate, &before.tickets[0].signed_code).await.unwrap();
    scan(&app, &gate, &after.tickets[0].signed_code).await.unwrap();
    let admitted = app.api().gate_state(&gate).await.unwrap().body.admitted;
    assert!(admitted.contains(&before.tickets[0].code) && admitted.contains(&after.tickets[0].code), "{admitted:?}");

    // Without the old key, what it made can be neither shown nor signed: nts refuses to start, and says why.
    let out = command(&app.db.url, &[("NTS_TICKET_KEY", NEW)]).output().expect("nts runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("NTS_TICKET_KEY") && said.contains("is not listed"), "{said}");
    assert!(said.contains("1 event signing key(s) and 1 ticket code(s)"), "{said}");
    assert!(!said.contains("nts is serving"));
}

/// The database before tickets were kept hashed: a paid order with two plain
/// codes, a plain signing seed, and a scan that names its ticket by code.
#[tokio::test]
async fn tickets_issued_before_keep_their_codes_sealed_and_go_in_bare_online() {
    const VERSION: i64 = 20261208001000;
    let db = TestDb::create_before(VERSION).await.unwrap();
    let pool = db.pool(2).await.unwrap();
    let (event, tt, hold, order, device) =
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let codes = ["legacyCodeNumberOne_0001", "legacyCodeNumberTwo_0002"];
    let seed = [7u8; 32];
    // A buyer secret's shape: 43 base64url characters.
    const SECRET: &str = "old-order-secret-of-the-buyer-0123456789abc";
    let public_key = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    sqlx::raw_sql(&format!(
        "INSERT INTO events (id, name, venue, starts_at, currency) VALUES ('{event}', 'Old', 'Hall', '2099-01-01', 'GBP');
         INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order, sold)
           VALUES ('{tt}', '{event}', 0, 'General', 999, 10, 4, 2);
         INSERT INTO holds (id, secret_hash, event_id, buyer_name, buyer_email, quantity, amount_minor,
                            currency, status, expires_at)
           VALUES ('{hold}', sha256('h'::bytea), '{event}', 'Ada', 'ada@example.com', 2, 1998, 'GBP',
                   'checked_out', now());
         INSERT INTO orders (id, secret_hash, hold_id, event_id, buyer_name, buyer_email, quantity,
                             amount_minor, currency, status, expires_at, paid_at)
           VALUES ('{order}', sha256('{secret}'::bytea), '{hold}', '{event}', 'Ada', 'ada@example.com',
                   2, 1998, 'GBP', 'paid', now(), now());
         INSERT INTO tickets (code, order_id, ticket_type_id, position)
           VALUES ('{c0}', '{order}', '{tt}', 1), ('{c1}', '{order}', '{tt}', 2);
         INSERT INTO checkin_event_keys (event_id, public_key, secret_key) VALUES ('{event}', '\\x{pk}', '\\x{sk}');
         INSERT INTO checkin_devices (id, event_id, name, token_hash) VALUES ('{device}', '{event}', 'Old gate', '\\x00');
         INSERT INTO checkin_scans (id, device_id, scan_id, ticket_code, event_id, outcome, offline, scanned_at)
           VALUES (gen_random_uuid(), '{device}', gen_random_uuid(), '{c1}', '{event}', 'admitted', false, now());",
        secret = SECRET,
        c0 = codes[0],
        c1 = codes[1],
        pk = public_key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        sk = seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
    .execute(&pool)
    .await
    .unwrap();

    // The migration keeps the codes' hashes; the first start seals the rest before serving.
    nts::db::MIGRATOR.run(&pool).await.unwrap();
    let mut app = TestApp {
        db: std::sync::Arc::new(db),
        pool,
        http: reqwest::Client::new(),
        instances: Vec::new(),
        settings: Default::default(),
    };
    app.start_instance().await;
    let (values, bytes) = dump(&app).await;
    for code in codes {
        assert!(!values.iter().any(|v| v.contains(code)), "{code} is still plain in the database");
    }
    assert!(!bytes.iter().any(|b| b[..] == seed[..]), "the seed is still plain in the database");

    // The order page shows the same codes, signed by the same key.
    let seen = app.api().order(order, SECRET).await.unwrap().body;
    assert_eq!(seen.tickets.iter().map(|t| t.code.as_str()).collect::<Vec<_>>(), codes);
    let signature = SigningKey::from_bytes(&seed).sign(&message(event, codes[0]));
    assert_eq!(seen.tickets[0].signed_code, format!("{}.{}", codes[0], URL_SAFE_NO_PAD.encode(signature.to_bytes())));
    // At the door: bare (as they may have been printed) online, and the one scanned before is in.
    let gate = app.api().create_device(event, "Gate").await.unwrap().body.token;
    scan(&app, &gate, codes[1]).await.expect_error(409, "already_checked_in");
    let admitted = scan(&app, &gate, codes[0]).await.unwrap().body;
    assert_eq!(admitted.ticket, codes[0]);
}
