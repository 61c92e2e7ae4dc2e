//! Check-in at the door: devices, exactly-once admission under concurrency,
//! refusals, undo, idempotent retries, offline uploads and double entries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nts_testkit::wire::{
    CheckinOutcome, CheckinRefusal, NewCheckin, OfflineOutcome, OfflineScan, OfflineUpload, OfflineUploadResult, Order,
    SimulatedOutcome,
};
use nts_testkit::{spawn_app, ApiResult, Expect, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

/// A check-in device of `event`; answers its token.
async fn device(app: &TestApp, event: Uuid, name: &str) -> String {
    app.api().create_device(event, name).await.unwrap().body.token
}

/// Makes the event's devices a day old, so that their offline scans may be from the last hours.
async fn backdate_devices(app: &TestApp, event: Uuid) {
    sqlx::query("UPDATE checkin_devices SET created_at = created_at - interval '1 day' WHERE event_id = $1")
        .bind(event)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// A time `minutes` ago, in whole seconds.
fn ago(minutes: i64) -> OffsetDateTime {
    let at = OffsetDateTime::now_utc() - time::Duration::minutes(minutes);
    at.replace_nanosecond(0).unwrap()
}

fn signed(order: &Order, i: usize) -> String {
    order.tickets[i].signed_code.clone()
}

fn plain(order: &Order, i: usize) -> String {
    order.tickets[i].code.clone()
}

async fn scan(app: &TestApp, token: &str, code: &str, scan_id: Uuid) -> ApiResult<nts_testkit::wire::Checkin> {
    app.api().check_in(token, &NewCheckin { code: code.to_owned(), scan_id }).await
}

fn offline(scans: &[(&str, OffsetDateTime)]) -> OfflineUpload {
    let scans = scans
        .iter()
        .map(|&(code, scanned_at)| OfflineScan { code: code.to_owned(), scan_id: Uuid::new_v4(), scanned_at })
        .collect();
    OfflineUpload { scans }
}

fn outcomes(result: &OfflineUploadResult) -> Vec<OfflineOutcome> {
    result.results.iter().map(|r| r.outcome).collect()
}

#[tokio::test]
async fn signed_codes_are_the_same_on_every_read_and_admit_before_and_after_the_event_key_existed() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let mut reads = Vec::new();
    for _ in 0..2 {
        let c = app.checkout(event, tt, 2).await;
        let secret = c.order.secret.clone().unwrap();
        app.confirm(c.payment.unwrap().id, &secret, SimulatedOutcome::Succeeded).await.expect_status(200);
        // The first read of the event's first order makes the event's key; every later read finds it.
        let first = app.api().order(c.order.id, &secret).await.unwrap().body;
        let again = app.api().order(c.order.id, &secret).await.unwrap().body;
        let codes = |o: &Order| o.tickets.iter().map(|t| t.signed_code.clone()).collect::<Vec<_>>();
        assert_eq!(codes(&first), codes(&again));
        reads.push(first);
    }
    let gate = device(&app, event, "Gate").await;
    for order in &reads {
        for i in 0..2 {
            let admitted = scan(&app, &gate, &signed(order, i), Uuid::new_v4()).await.unwrap().body;
            assert_eq!(admitted.ticket, plain(order, i));
        }
    }
}

#[tokio::test]
async fn devices_are_created_listed_and_revoked_and_can_do_nothing_else() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let (other_event, other_tt) = app.simple_event(10, 4).await;
    let path = format!("/api/v1/admin/events/{event}/checkin-devices");
    // Without a credential: only a raw request can leave it out.
    api.send_json(Method::POST, &path, Some(&json!({"name": "Gate 1"})), None).await.expect_error(401, "unauthorized");
    api.create_device(event, "").await.expect_error(422, "validation_failed");
    api.create_device(event, &"x".repeat(101)).await.expect_error(422, "validation_failed");
    api.create_device(Uuid::new_v4(), "G").await.expect_error(404, "not_found");
    let created = api.create_device(event, "Gate 1").await.unwrap();
    let token = created.token.clone();
    assert!(token.starts_with("ntsdev_") && token.len() > 40);
    assert!(created.token_qr_svg.starts_with("<?xml"));

    // The token is shown once: the listed devices have none (their type refuses unknown fields).
    let list = api.devices(event).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "Gate 1");
    let as_device = api.with_admin_token(&token);
    as_device.devices(event).await.expect_error(403, "forbidden");

    // The device token opens no organiser call.
    as_device.admin_events().await.expect_error(403, "forbidden");
    api.send_json(Method::POST, "/api/v1/admin/events", Some(&json!({})), Some(&token))
        .await
        .expect_error(403, "forbidden");
    as_device.guests(event).await.expect_error(403, "forbidden");
    as_device.checkin_report(event).await.expect_error(403, "forbidden");
    as_device.create_device(event, "Mine").await.expect_error(403, "forbidden");
    as_device.payments_audit().await.expect_error(403, "forbidden");
    as_device.refund(Uuid::new_v4(), true).await.expect_error(403, "forbidden");

    // Of another event's tickets it checks none.
    let theirs = app.buy(other_event, other_tt, 1).await;
    scan(&app, &token, &signed(&theirs, 0), Uuid::new_v4()).await.expect_error(422, "other_event");
    // Bare, it is refused before anything else: a ticket issued now goes in only signed.
    scan(&app, &token, &plain(&theirs, 0), Uuid::new_v4()).await.expect_error(422, "signed_code_required");
    let ours = app.buy(event, tt, 1).await;
    let other_device = device(&app, other_event, "Their gate").await;
    scan(&app, &other_device, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(422, "other_event");

    // No token, a token of the wrong kind, the admin token: refused.
    scan(&app, "", &signed(&ours, 0), Uuid::new_v4()).await.expect_error(401, "unauthorized");
    scan(&app, ADMIN_TOKEN, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "forbidden");
    scan(&app, "ntsdev_not-a-real-token", &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "forbidden");
    api.gate_state(ADMIN_TOKEN).await.expect_error(403, "forbidden");

    // Revoked: the token stops working; revoking twice is fine.
    api.revoke_device(event, created.id).await.unwrap();
    api.revoke_device(event, created.id).await.unwrap();
    api.revoke_device(event, Uuid::new_v4()).await.expect_error(404, "not_found");
    scan(&app, &token, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "device_revoked");
    api.gate_state(&token).await.expect_error(403, "device_revoked");
    assert!(api.devices(event).await.unwrap()[0].revoked_at.is_some());
}

#[tokio::test]
async fn a_ticket_goes_in_once_and_the_second_scan_says_when_and_where() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 2).await;
    let gate1 = device(&app, event, "Gate 1").await;
    let gate2 = device(&app, event, "Gate 2").await;

    let first_id = Uuid::new_v4();
    let admitted = scan(&app, &gate1, &signed(&order, 0), first_id).await.unwrap().body;
    assert_eq!(admitted.ticket, plain(&order, 0));
    assert_eq!((admitted.name.as_str(), admitted.ticket_type.as_str()), ("Ada Lovelace", "General"));
    assert_eq!(admitted.device, "Gate 1");

    let again = scan(&app, &gate2, &signed(&order, 0), Uuid::new_v4()).await;
    let again: CheckinRefusal = again.expect_error(409, "already_checked_in").body_as();
    let first = again.checked_in.unwrap();
    assert_eq!(first.device, "Gate 1");
    assert_eq!(first.checked_in_at, admitted.checked_in_at);
    assert_eq!(first.id, admitted.id);
    assert_eq!(again.name, "Ada Lovelace");
    // Its bare code is refused (only tickets issued before codes were derived go in bare), and not recorded.
    scan(&app, &gate2, &plain(&order, 0), Uuid::new_v4()).await.expect_error(422, "signed_code_required");

    // The device's retry of its scan replays the answer and admits nothing new.
    let retry = scan(&app, &gate1, &signed(&order, 0), first_id).await.unwrap();
    assert_eq!(retry.body, admitted);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    // The same scan_id for another ticket is a device bug, not a scan.
    scan(&app, &gate1, &signed(&order, 1), first_id).await.expect_error(422, "scan_id_reused");
    // The other ticket of the order is its own ticket.
    scan(&app, &gate2, &signed(&order, 1), Uuid::new_v4()).await.unwrap();

    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome::text, COUNT(*) FROM checkin_scans GROUP BY outcome ORDER BY outcome::text")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("admitted".into(), 2), ("already_checked_in".into(), 1)]);

    let gate = app.api().gate_state(&gate2).await.unwrap();
    assert_eq!((gate.sold, gate.checked_in), (2, 2));
    assert_eq!(gate.device, "Gate 2");
}

#[tokio::test]
async fn forged_and_malformed_codes_are_unknown_tickets() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 1).await;
    let gate = device(&app, event, "Gate").await;
    let code = signed(&order, 0);
    let (ticket, signature) = code.split_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[5] ^= 0x40;
    let forged = format!("{ticket}.{}", URL_SAFE_NO_PAD.encode(&sig));
    scan(&app, &gate, &forged, Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    // A valid signature of another event's key does not make it ours.
    let (other_event, other_tt) = app.simple_event(10, 4).await;
    let theirs = signed(&app.buy(other_event, other_tt, 1).await, 0);
    let (_, their_sig) = theirs.split_once('.').unwrap();
    scan(&app, &gate, &format!("{ticket}.{their_sig}"), Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    for junk in ["", "hello", &"A".repeat(24), &format!("{ticket}.short"), &"x".repeat(5000)] {
        scan(&app, &gate, junk, Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    }
    // Malformed scans: only raw requests can be that wrong.
    let api = app.api();
    for body in [
        json!({"code": code}),
        json!({"code": code, "scan_id": "nope"}),
        json!({"code": code, "scan_id": Uuid::new_v4(), "x": 1}),
    ] {
        api.send_json(Method::POST, "/api/v1/checkins", Some(&body), Some(&gate))
            .await
            .expect_error(422, "validation_failed");
    }
    let none: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans").fetch_one(&app.pool).await.unwrap();
    assert_eq!(none, 0, "nothing recorded");
    // The real one still goes in.
    scan(&app, &gate, &code, Uuid::new_v4()).await.unwrap();
}

#[tokio::test]
async fn the_gate_state_has_the_key_that_verifies_the_codes() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 2).await;
    let gate = device(&app, event, "Gate").await;
    let state = app.api().gate_state(&gate).await.unwrap();
    assert_eq!(state.event_id, event);
    let key: [u8; 32] = URL_SAFE_NO_PAD.decode(&state.public_key).unwrap().try_into().unwrap();
    for i in 0..2 {
        let code = signed(&order, i);
        let (ticket, sig) = code.split_once('.').unwrap();
        let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
        assert!(nts::checkin::codes::verify(&key, event, ticket, &sig));
        assert!(!nts::checkin::codes::verify(&key, Uuid::new_v4(), ticket, &sig));
    }
    assert_eq!(state.revoked, Vec::<String>::new());
    assert_eq!(state.admitted, Vec::<String>::new());
    scan(&app, &gate, &signed(&order, 1), Uuid::new_v4()).await.unwrap();
    assert_eq!(app.api().gate_state(&gate).await.unwrap().admitted, [plain(&order, 1)]);
}

#[tokio::test]
async fn twenty_gates_on_two_instances_admit_each_ticket_exactly_once() {
    let mut app = spawn_app().await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(50, 5).await;
    let order = app.buy(event, tt, 5).await;
    let mut gates = Vec::new();
    for i in 0..20 {
        gates.push(device(&app, event, &format!("Gate {i}")).await);
    }
    let apis = [app.api_on(0), app.api_on(1)];
    for t in 0..5 {
        let code = signed(&order, t);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = gates
            .iter()
            .enumerate()
            .map(|(i, gate)| {
                let (api, gate, code, barrier) = (apis[i % 2].clone(), gate.clone(), code.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    api.check_in(&gate, &NewCheckin { code, scan_id: Uuid::new_v4() }).await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            let answer = task.await.unwrap();
            if let Err(e) = &answer {
                if e.status == 409 {
                    assert_eq!(e.code, "already_checked_in");
                }
            }
            statuses.push(answer.map_or_else(|e| e.status, |r| r.http_status).as_u16());
        }
        statuses.sort();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "ticket {t}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "ticket {t}: {statuses:?}");
    }
    let admitted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans WHERE outcome = 'admitted'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(admitted, 5);
    let report = app.api().checkin_report(event).await.unwrap();
    assert_eq!((report.checked_in, report.sold), (5, 5));
}

#[tokio::test]
async fn a_refunded_ticket_is_refused_online_and_revoked_for_offline_gates() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 1).await;
    let gate = device(&app, event, "Gate").await;
    backdate_devices(&app, event).await;
    api.refund(order.id, true).await.expect_status(200);
    let refused = scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await;
    let refused: CheckinRefusal = refused.expect_error(409, "ticket_not_valid").body_as();
    assert_eq!(refused.ticket, plain(&order, 0));
    let state = api.gate_state(&gate).await.unwrap();
    assert_eq!(state.revoked, [plain(&order, 0)]);
    assert_eq!(state.sold, 0);
    // An offline gate that did not know yet let it in: recorded and reported.
    let upload = api.upload_offline(&gate, &offline(&[(&signed(&order, 0), ago(50))])).await.unwrap();
    assert_eq!(upload.results[0].outcome, OfflineOutcome::InvalidEntry);
    let report = api.checkin_report(event).await.unwrap();
    assert_eq!(report.double_entries.len(), 1);
    assert_eq!(report.double_entries[0].kind, CheckinOutcome::InvalidEntry);
    assert_eq!(report.checked_in, 0);
}

#[tokio::test]
async fn the_organiser_undoes_a_check_in_and_it_is_recorded() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 1).await;
    let gate = device(&app, event, "Gate 3").await;
    let ticket = plain(&order, 0);
    api.undo_checkin(event, &ticket, None).await.expect_error(409, "not_checked_in");
    let admitted = scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await.unwrap();

    let guests = api.guests(event).await.unwrap();
    assert_eq!(guests[0].checked_in[0].device, "Gate 3");
    assert_eq!(guests[0].checked_in[0].checked_in_at, admitted.checked_in_at);

    api.with_admin_token(&gate).undo_checkin(event, &ticket, None).await.expect_error(403, "forbidden");
    api.undo_checkin(event, &ticket, Some("")).await.expect_error(422, "validation_failed");
    let undone = api.undo_checkin(event, &ticket, Some("Sam (door manager)")).await.unwrap();
    assert_eq!(undone.undone_by, "Sam (door manager)");
    assert_eq!(undone.id, admitted.id);
    api.undo_checkin(event, &ticket, None).await.expect_error(409, "not_checked_in");
    api.undo_checkin(event, &"B".repeat(24), None).await.expect_error(404, "not_found");
    let (other_event, _) = app.simple_event(10, 4).await;
    api.undo_checkin(other_event, &ticket, None).await.expect_error(404, "not_found");

    assert_eq!(api.guests(event).await.unwrap()[0].checked_in, []);
    // In again, and the undone admission stays on record.
    scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await.unwrap();
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT outcome::text, undone_by FROM checkin_scans ORDER BY recorded_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("admitted".into(), Some("Sam (door manager)".into())), ("admitted".into(), None)]);
}

#[tokio::test]
async fn offline_gates_upload_their_scans_and_double_entries_are_reported() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 3).await;
    let north = device(&app, event, "North door").await;
    let south = device(&app, event, "South door").await;
    backdate_devices(&app, event).await;
    let ticket = signed(&order, 0);
    let (north_at, south_at) = (ago(50), ago(45));
    let north_batch = offline(&[(&ticket, north_at), (&signed(&order, 1), ago(49))]);
    let forged = format!("{}.{}", plain(&order, 2), "A".repeat(86));
    let south_batch = offline(&[(&ticket, south_at), (&forged, ago(44))]);
    use OfflineOutcome::{Admitted, DoubleEntry, UnknownTicket};
    let n = api.upload_offline(&north, &north_batch).await.unwrap();
    assert_eq!(outcomes(&n), [Admitted, Admitted]);
    let s = api.upload_offline(&south, &south_batch).await.unwrap();
    assert_eq!(outcomes(&s), [DoubleEntry, UnknownTicket]);
    assert_eq!(s.results[0].checked_in.as_ref().unwrap().device, "North door");
    // Uploading again (a lost answer) changes nothing.
    assert_eq!(outcomes(&api.upload_offline(&north, &north_batch).await.unwrap()), [Admitted, Admitted]);
    assert_eq!(outcomes(&api.upload_offline(&south, &south_batch).await.unwrap()), [DoubleEntry, UnknownTicket]);
    // A clock a little ahead counts as now.
    let ahead = OffsetDateTime::now_utc() + time::Duration::minutes(2);
    let future = api.upload_offline(&south, &offline(&[(&signed(&order, 2), ahead)])).await;
    assert_eq!(future.unwrap().results[0].outcome, Admitted);
    let at: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans WHERE scanned_at > now()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(at, 0);

    let report = api.checkin_report(event).await.unwrap();
    assert_eq!((report.checked_in, report.sold), (3, 3));
    assert_eq!(report.ticket_types[0].checked_in, 3);
    let entries = &report.double_entries;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!((entry.kind, entry.ticket.as_str()), (CheckinOutcome::DoubleEntry, plain(&order, 0).as_str()));
    assert_eq!((entry.device.as_str(), entry.scanned_at), ("South door", south_at));
    let first = entry.first.as_ref().unwrap();
    assert_eq!(first.device, "North door");
    assert_eq!(first.checked_in_at, north_at);
    assert!(first.offline);

    // Bad batches change nothing.
    api.upload_offline(&north, &offline(&[])).await.expect_error(422, "validation_failed");
    let too_many: Vec<(&str, OffsetDateTime)> = (0..101).map(|_| (ticket.as_str(), ago(50))).collect();
    api.upload_offline(&north, &offline(&too_many)).await.expect_error(422, "validation_failed");
    // A scan without its time: only a raw request can leave it out.
    api.send_json(
        Method::POST,
        "/api/v1/checkins/offline",
        Some(&json!({"scans": [{"code": ticket, "scan_id": Uuid::new_v4()}]})),
        Some(&north),
    )
    .await
    .expect_error(422, "validation_failed");
    let scans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans").fetch_one(&app.pool).await.unwrap();
    assert_eq!(scans, 4);
}

#[tokio::test]
async fn offline_scan_times_outside_the_devices_life_are_refused_one_by_one() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 2).await;
    let created = api.create_device(event, "Gate").await.unwrap();
    let gate = created.token.clone();
    let before = created.created_at - time::Duration::minutes(1);
    let far_ahead = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let batch = offline(&[
        (&signed(&order, 0), before),
        (&signed(&order, 0), far_ahead),
        (&signed(&order, 0), datetime!(2999-01-01 0:00 UTC)),
        (&signed(&order, 1), created.created_at),
    ]);
    use OfflineOutcome::{Admitted, ScannedAtOutOfRange};
    let answer = api.upload_offline(&gate, &batch).await.unwrap();
    assert_eq!(outcomes(&answer), [ScannedAtOutOfRange, ScannedAtOutOfRange, ScannedAtOutOfRange, Admitted]);
    assert_eq!(answer.results[0].ticket, None, "a refused scan is not looked at further");
    // Uploading the batch again answers the same; the refused scans were not recorded.
    let again = api.upload_offline(&gate, &batch).await.unwrap();
    assert_eq!(outcomes(&again), outcomes(&answer));
    // (Tickets keep a hash of their code, not the code.)
    let rows: Vec<(bool, OffsetDateTime)> = sqlx::query_as(
        "SELECT t.code_hash = sha256(convert_to($1, 'UTF8')), s.scanned_at
         FROM checkin_scans s JOIN tickets t ON t.event_id = s.event_id AND t.id = s.ticket_id",
    )
    .bind(plain(&order, 1))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, [(true, created.created_at)]);
    // The ticket of the refused scans is not in: a scan with a believable time admits it.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap().max(created.created_at);
    let good = api.upload_offline(&gate, &offline(&[(&signed(&order, 0), now)])).await.unwrap();
    assert_eq!(outcomes(&good), [Admitted]);
}

#[tokio::test]
async fn a_revoked_device_uploads_what_it_scanned_before_its_revocation_and_nothing_else() {
    let app = spawn_app().await;
    let api = app.api();
    let (event, tt) = app.simple_event(10, 4).await;
    let order = app.buy(event, tt, 3).await;
    let created = api.create_device(event, "Lost phone").await.unwrap();
    let gate = created.token.clone();
    backdate_devices(&app, event).await;
    api.revoke_device(event, created.id).await.unwrap();
    let revoked_at = api.devices(event).await.unwrap()[0].revoked_at.unwrap();

    // What it let in while offline before the organiser revoked it is uploaded; what came after is refused.
    let before = revoked_at - time::Duration::minutes(10);
    let batch = offline(&[(&signed(&order, 0), before), (&signed(&order, 1), revoked_at)]);
    use OfflineOutcome::{Admitted, DeviceRevoked};
    let answer = api.upload_offline(&gate, &batch).await.unwrap();
    assert_eq!(outcomes(&answer), [Admitted, DeviceRevoked]);
    assert_eq!(outcomes(&api.upload_offline(&gate, &batch).await.unwrap()), [Admitted, DeviceRevoked]);
    let guests = api.guests(event).await.unwrap();
    let admitted: Vec<_> = guests.iter().flat_map(|g| g.checked_in.iter()).collect();
    assert_eq!(admitted.len(), 1);
    assert_eq!((admitted[0].device.as_str(), admitted[0].checked_in_at), ("Lost phone", before));
    assert_eq!(api.devices(event).await.unwrap()[0].admitted, 1);
    // Online it checks nothing in any more, and gets no gate state.
    scan(&app, &gate, &signed(&order, 2), Uuid::new_v4()).await.expect_error(403, "device_revoked");
    api.gate_state(&gate).await.expect_error(403, "device_revoked");

    // A day after its revocation, the device uploads nothing at all.
    sqlx::query(
        "UPDATE checkin_devices SET revoked_at = now() - interval '25 hours', created_at = now() - interval '2 days'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let late = offline(&[(&signed(&order, 2), OffsetDateTime::now_utc() - time::Duration::hours(30))]);
    api.upload_offline(&gate, &late).await.expect_error(403, "device_revoked");
    let scans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans").fetch_one(&app.pool).await.unwrap();
    assert_eq!(scans, 1);
}
