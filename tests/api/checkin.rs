//! Check-in at the door: devices, exactly-once admission under concurrency,
//! refusals, undo, idempotent retries, offline uploads and double entries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

/// A paid order of `quantity` tickets; answers the order (with `tickets[].code` and `signed_code`).
async fn buy(app: &TestApp, event: &str, tt: &str, quantity: i64) -> Value {
    let c = app.checkout(event, tt, quantity).await;
    let secret = c["order"]["secret"].as_str().unwrap().to_owned();
    app.confirm(c["payment"]["id"].as_str().unwrap(), &secret, "succeeded").await.expect(200);
    let order = app.get(&format!("/api/v1/orders/{}", c["order"]["id"].as_str().unwrap()), Some(&secret)).await;
    assert_eq!(order.expect(200)["status"], "paid");
    order.body.clone()
}

async fn device(app: &TestApp, event: &str, name: &str) -> String {
    let d = app
        .post(&format!("/api/v1/admin/events/{event}/checkin-devices"), &json!({"name": name}), Some(ADMIN_TOKEN))
        .await;
    d.expect(201)["token"].as_str().unwrap().to_owned()
}

/// A time `minutes` ago, in whole seconds, as RFC 3339.
fn ago(minutes: i64) -> String {
    let at = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes);
    at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn signed(order: &Value, i: usize) -> String {
    order["tickets"][i]["signed_code"].as_str().unwrap().to_owned()
}

fn plain(order: &Value, i: usize) -> String {
    order["tickets"][i]["code"].as_str().unwrap().to_owned()
}

async fn scan(app: &TestApp, token: &str, code: &str, scan_id: Uuid) -> crate::helpers::Answer {
    app.post("/api/v1/checkins", &json!({"code": code, "scan_id": scan_id}), Some(token)).await
}

#[tokio::test]
async fn devices_are_created_listed_and_revoked_and_can_do_nothing_else() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let (other_event, other_tt) = app.simple_event(10, 4).await;
    let path = format!("/api/v1/admin/events/{event}/checkin-devices");
    app.post(&path, &json!({"name": "Gate 1"}), None).await.expect_error(401, "unauthorized");
    app.post(&path, &json!({"name": ""}), Some(ADMIN_TOKEN)).await.expect_error(422, "validation_failed");
    app.post(&path, &json!({"name": "x".repeat(101)}), Some(ADMIN_TOKEN)).await.expect_error(422, "validation_failed");
    app.post(
        &format!("/api/v1/admin/events/{}/checkin-devices", Uuid::new_v4()),
        &json!({"name": "G"}),
        Some(ADMIN_TOKEN),
    )
    .await
    .expect_error(404, "not_found");
    let created = app.post(&path, &json!({"name": "Gate 1"}), Some(ADMIN_TOKEN)).await;
    let created = created.expect(201).clone();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ntsdev_") && token.len() > 40);
    assert!(created["token_qr_svg"].as_str().unwrap().starts_with("<?xml"));

    let list = app.get(&path, Some(ADMIN_TOKEN)).await;
    assert_eq!(list.expect(200).as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["name"], "Gate 1");
    assert!(list.body[0].get("token").is_none(), "the token is shown once: {}", list.body);
    app.get(&path, Some(&token)).await.expect_error(403, "forbidden");

    // The device token opens no organiser call.
    app.get("/api/v1/admin/events", Some(&token)).await.expect_error(403, "forbidden");
    app.post("/api/v1/admin/events", &json!({}), Some(&token)).await.expect_error(403, "forbidden");
    app.get(&format!("/api/v1/admin/events/{event}/guests"), Some(&token)).await.expect_error(403, "forbidden");
    app.get(&format!("/api/v1/admin/events/{event}/checkins"), Some(&token)).await.expect_error(403, "forbidden");
    app.post(&path, &json!({"name": "Mine"}), Some(&token)).await.expect_error(403, "forbidden");
    app.get("/api/v1/admin/payments/audit", Some(&token)).await.expect_error(403, "forbidden");
    app.post(&format!("/api/v1/admin/orders/{}/refund", Uuid::new_v4()), &json!({"release_seats": true}), Some(&token))
        .await
        .expect_error(403, "forbidden");

    // Of another event's tickets it checks none.
    let theirs = buy(&app, &other_event, &other_tt, 1).await;
    scan(&app, &token, &signed(&theirs, 0), Uuid::new_v4()).await.expect_error(422, "other_event");
    scan(&app, &token, &plain(&theirs, 0), Uuid::new_v4()).await.expect_error(422, "other_event");
    let ours = buy(&app, &event, &tt, 1).await;
    let other_device = device(&app, &other_event, "Their gate").await;
    scan(&app, &other_device, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(422, "other_event");

    // No token, a token of the wrong kind, the admin token: refused.
    scan(&app, "", &signed(&ours, 0), Uuid::new_v4()).await.expect_error(401, "unauthorized");
    scan(&app, ADMIN_TOKEN, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "forbidden");
    scan(&app, "ntsdev_not-a-real-token", &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "forbidden");
    app.get("/api/v1/checkin", Some(ADMIN_TOKEN)).await.expect_error(403, "forbidden");

    // Revoked: the token stops working; revoking twice is fine.
    let id = created["id"].as_str().unwrap();
    let revoke = format!("{path}/{id}");
    assert_eq!(app.call(Method::DELETE, &revoke, None, Some(ADMIN_TOKEN)).await.status, 204);
    assert_eq!(app.call(Method::DELETE, &revoke, None, Some(ADMIN_TOKEN)).await.status, 204);
    app.call(Method::DELETE, &format!("{path}/{}", Uuid::new_v4()), None, Some(ADMIN_TOKEN))
        .await
        .expect_error(404, "not_found");
    scan(&app, &token, &signed(&ours, 0), Uuid::new_v4()).await.expect_error(403, "forbidden");
    app.get("/api/v1/checkin", Some(&token)).await.expect_error(403, "forbidden");
    let list = app.get(&path, Some(ADMIN_TOKEN)).await;
    assert!(list.expect(200)[0]["revoked_at"].is_string());
}

#[tokio::test]
async fn a_ticket_goes_in_once_and_the_second_scan_says_when_and_where() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 2).await;
    let gate1 = device(&app, &event, "Gate 1").await;
    let gate2 = device(&app, &event, "Gate 2").await;

    let first_id = Uuid::new_v4();
    let first = scan(&app, &gate1, &signed(&order, 0), first_id).await;
    let admitted = first.expect(201).clone();
    assert_eq!(admitted["ticket"], plain(&order, 0));
    assert_eq!((admitted["name"].as_str(), admitted["ticket_type"].as_str()), (Some("Ada Lovelace"), Some("General")));
    assert_eq!(admitted["device"], "Gate 1");
    assert!(admitted["checked_in_at"].is_string());

    let again = scan(&app, &gate2, &signed(&order, 0), Uuid::new_v4()).await;
    again.expect_error(409, "already_checked_in");
    assert_eq!(again.body["checked_in"]["device"], "Gate 1");
    assert_eq!(again.body["checked_in"]["checked_in_at"], admitted["checked_in_at"]);
    assert_eq!(again.body["checked_in"]["id"], admitted["id"]);
    assert_eq!(again.body["name"], "Ada Lovelace");
    // The bare code (as on tickets issued before codes were signed) is the same ticket.
    scan(&app, &gate2, &plain(&order, 0), Uuid::new_v4()).await.expect_error(409, "already_checked_in");

    // The device's retry of its scan replays the answer and admits nothing new.
    let retry = scan(&app, &gate1, &signed(&order, 0), first_id).await;
    assert_eq!(retry.expect(201), &admitted);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    // The same scan_id for another ticket is a device bug, not a scan.
    scan(&app, &gate1, &signed(&order, 1), first_id).await.expect_error(422, "scan_id_reused");
    // The other ticket of the order is its own ticket; online, a bare code works.
    scan(&app, &gate2, &plain(&order, 1), Uuid::new_v4()).await.expect(201);

    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome::text, COUNT(*) FROM checkin_scans GROUP BY outcome ORDER BY outcome::text")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("admitted".into(), 2), ("already_checked_in".into(), 2)]);

    let gate = app.get("/api/v1/checkin", Some(&gate2)).await;
    assert_eq!((gate.expect(200)["sold"].as_i64(), gate.body["checked_in"].as_i64()), (Some(2), Some(2)));
    assert_eq!(gate.body["device"], "Gate 2");
}

#[tokio::test]
async fn forged_and_malformed_codes_are_unknown_tickets() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 1).await;
    let gate = device(&app, &event, "Gate").await;
    let code = signed(&order, 0);
    let (ticket, signature) = code.split_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[5] ^= 0x40;
    let forged = format!("{ticket}.{}", URL_SAFE_NO_PAD.encode(&sig));
    scan(&app, &gate, &forged, Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    // A valid signature of another event's key does not make it ours.
    let (other_event, other_tt) = app.simple_event(10, 4).await;
    let theirs = signed(&buy(&app, &other_event, &other_tt, 1).await, 0);
    let (_, their_sig) = theirs.split_once('.').unwrap();
    scan(&app, &gate, &format!("{ticket}.{their_sig}"), Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    for junk in ["", "hello", &"A".repeat(24), &format!("{ticket}.short"), &"x".repeat(5000)] {
        scan(&app, &gate, junk, Uuid::new_v4()).await.expect_error(404, "unknown_ticket");
    }
    app.post("/api/v1/checkins", &json!({"code": code}), Some(&gate)).await.expect_error(422, "validation_failed");
    app.post("/api/v1/checkins", &json!({"code": code, "scan_id": "nope"}), Some(&gate))
        .await
        .expect_error(422, "validation_failed");
    app.post("/api/v1/checkins", &json!({"code": code, "scan_id": Uuid::new_v4(), "x": 1}), Some(&gate))
        .await
        .expect_error(422, "validation_failed");
    let none: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans").fetch_one(&app.pool).await.unwrap();
    assert_eq!(none, 0, "nothing recorded");
    // The real one still goes in.
    scan(&app, &gate, &code, Uuid::new_v4()).await.expect(201);
}

#[tokio::test]
async fn the_gate_state_has_the_key_that_verifies_the_codes() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 2).await;
    let gate = device(&app, &event, "Gate").await;
    let state = app.get("/api/v1/checkin", Some(&gate)).await.expect(200).clone();
    assert_eq!(state["event_id"], event.as_str());
    let key: [u8; 32] = URL_SAFE_NO_PAD.decode(state["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let event_id: Uuid = event.parse().unwrap();
    for i in 0..2 {
        let code = signed(&order, i);
        let (ticket, sig) = code.split_once('.').unwrap();
        let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
        assert!(nts::checkin::codes::verify(&key, event_id, ticket, &sig));
        assert!(!nts::checkin::codes::verify(&key, Uuid::new_v4(), ticket, &sig));
    }
    assert_eq!(state["revoked"], json!([]));
    assert_eq!(state["admitted"], json!([]));
    scan(&app, &gate, &signed(&order, 1), Uuid::new_v4()).await.expect(201);
    let state = app.get("/api/v1/checkin", Some(&gate)).await;
    assert_eq!(state.expect(200)["admitted"], json!([plain(&order, 1)]));
}

#[tokio::test]
async fn twenty_gates_on_two_instances_admit_each_ticket_exactly_once() {
    let mut app = spawn_app().await;
    app.start_instance().await;
    let (event, tt) = app.simple_event(50, 5).await;
    let order = buy(&app, &event, &tt, 5).await;
    let mut gates = Vec::new();
    for i in 0..20 {
        gates.push(device(&app, &event, &format!("Gate {i}")).await);
    }
    let app = std::sync::Arc::new(app);
    for t in 0..5 {
        let code = signed(&order, t);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = gates
            .iter()
            .enumerate()
            .map(|(i, gate)| {
                let (app, gate, code, barrier) = (app.clone(), gate.clone(), code.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let body = json!({"code": code, "scan_id": Uuid::new_v4()});
                    app.call_on(i % 2, Method::POST, "/api/v1/checkins", Some(&body), Some(&gate), None).await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            let answer = task.await.unwrap();
            if answer.status == 409 {
                assert_eq!(answer.code(), "already_checked_in");
            }
            statuses.push(answer.status.as_u16());
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
    let report = app.get(&format!("/api/v1/admin/events/{event}/checkins"), Some(ADMIN_TOKEN)).await;
    assert_eq!((report.expect(200)["checked_in"].as_i64(), report.body["sold"].as_i64()), (Some(5), Some(5)));
}

#[tokio::test]
async fn a_refunded_ticket_is_refused_online_and_revoked_for_offline_gates() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 1).await;
    let gate = device(&app, &event, "Gate").await;
    app.post(
        &format!("/api/v1/admin/orders/{}/refund", order["id"].as_str().unwrap()),
        &json!({"release_seats": true}),
        Some(ADMIN_TOKEN),
    )
    .await
    .expect(200);
    let refused = scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await;
    refused.expect_error(409, "ticket_not_valid");
    assert_eq!(refused.body["ticket"], plain(&order, 0));
    let state = app.get("/api/v1/checkin", Some(&gate)).await;
    assert_eq!(state.expect(200)["revoked"], json!([plain(&order, 0)]));
    assert_eq!(state.body["sold"], 0);
    // An offline gate that did not know yet let it in: recorded and reported.
    let upload = app
        .post(
            "/api/v1/checkins/offline",
            &json!({"scans": [{"code": signed(&order, 0), "scan_id": Uuid::new_v4(), "scanned_at": &ago(50)}]}),
            Some(&gate),
        )
        .await;
    assert_eq!(upload.expect(200)["results"][0]["outcome"], "invalid_entry");
    let report = app.get(&format!("/api/v1/admin/events/{event}/checkins"), Some(ADMIN_TOKEN)).await;
    let entries = report.expect(200)["double_entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "invalid_entry");
    assert_eq!(report.body["checked_in"], 0);
}

#[tokio::test]
async fn the_organiser_undoes_a_check_in_and_it_is_recorded() {
    let app = spawn_app().await;
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 1).await;
    let gate = device(&app, &event, "Gate 3").await;
    let ticket = plain(&order, 0);
    let undo = format!("/api/v1/admin/events/{event}/checkins/{ticket}/undo");
    app.post(&undo, &json!({}), Some(ADMIN_TOKEN)).await.expect_error(409, "not_checked_in");
    let admitted = scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await.expect(201).clone();

    let guests = app.get(&format!("/api/v1/admin/events/{event}/guests"), Some(ADMIN_TOKEN)).await;
    assert_eq!(guests.expect(200)[0]["checked_in"][0]["device"], "Gate 3");
    assert_eq!(guests.body[0]["checked_in"][0]["checked_in_at"], admitted["checked_in_at"]);

    app.post(&undo, &json!({}), Some(&gate)).await.expect_error(403, "forbidden");
    app.post(&undo, &json!({"by": ""}), Some(ADMIN_TOKEN)).await.expect_error(422, "validation_failed");
    let undone = app.post(&undo, &json!({"by": "Sam (door manager)"}), Some(ADMIN_TOKEN)).await;
    assert_eq!(undone.expect(200)["undone_by"], "Sam (door manager)");
    assert_eq!(undone.body["id"], admitted["id"]);
    assert!(undone.body["undone_at"].is_string());
    app.post(&undo, &json!({}), Some(ADMIN_TOKEN)).await.expect_error(409, "not_checked_in");
    app.post(&format!("/api/v1/admin/events/{event}/checkins/{}/undo", "B".repeat(24)), &json!({}), Some(ADMIN_TOKEN))
        .await
        .expect_error(404, "not_found");
    let (other_event, _) = app.simple_event(10, 4).await;
    app.post(&format!("/api/v1/admin/events/{other_event}/checkins/{ticket}/undo"), &json!({}), Some(ADMIN_TOKEN))
        .await
        .expect_error(404, "not_found");

    let guests = app.get(&format!("/api/v1/admin/events/{event}/guests"), Some(ADMIN_TOKEN)).await;
    assert_eq!(guests.expect(200)[0]["checked_in"], json!([]));
    // In again, and the undone admission stays on record.
    scan(&app, &gate, &signed(&order, 0), Uuid::new_v4()).await.expect(201);
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
    let (event, tt) = app.simple_event(10, 4).await;
    let order = buy(&app, &event, &tt, 3).await;
    let north = device(&app, &event, "North door").await;
    let south = device(&app, &event, "South door").await;
    let ticket = signed(&order, 0);
    let (north_at, south_at) = (ago(50), ago(45));
    let north_batch = json!({"scans": [
        {"code": ticket, "scan_id": Uuid::new_v4(), "scanned_at": north_at},
        {"code": signed(&order, 1), "scan_id": Uuid::new_v4(), "scanned_at": &ago(49)},
    ]});
    let south_batch = json!({"scans": [
        {"code": ticket, "scan_id": Uuid::new_v4(), "scanned_at": south_at},
        {"code": format!("{}.{}", plain(&order, 2), "A".repeat(86)), "scan_id": Uuid::new_v4(), "scanned_at": &ago(44)},
    ]});
    let n = app.post("/api/v1/checkins/offline", &north_batch, Some(&north)).await;
    let outcomes = |a: &crate::helpers::Answer| -> Vec<String> {
        a.body["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap().to_owned()).collect()
    };
    n.expect(200);
    assert_eq!(outcomes(&n), ["admitted", "admitted"]);
    let s = app.post("/api/v1/checkins/offline", &south_batch, Some(&south)).await;
    s.expect(200);
    assert_eq!(outcomes(&s), ["double_entry", "unknown_ticket"]);
    assert_eq!(s.body["results"][0]["checked_in"]["device"], "North door");
    // Uploading again (a lost answer) changes nothing.
    assert_eq!(
        outcomes(&app.post("/api/v1/checkins/offline", &north_batch, Some(&north)).await),
        ["admitted", "admitted"]
    );
    assert_eq!(
        outcomes(&app.post("/api/v1/checkins/offline", &south_batch, Some(&south)).await),
        ["double_entry", "unknown_ticket"]
    );
    // A clock in the future counts as now.
    let future = app
        .post(
            "/api/v1/checkins/offline",
            &json!({"scans": [{"code": signed(&order, 2), "scan_id": Uuid::new_v4(), "scanned_at": "2999-01-01T00:00:00Z"}]}),
            Some(&south),
        )
        .await;
    assert_eq!(future.expect(200)["results"][0]["outcome"], "admitted");
    let at: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans WHERE scanned_at > now()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(at, 0);

    let report = app.get(&format!("/api/v1/admin/events/{event}/checkins"), Some(ADMIN_TOKEN)).await;
    report.expect(200);
    assert_eq!((report.body["checked_in"].as_i64(), report.body["sold"].as_i64()), (Some(3), Some(3)));
    assert_eq!(report.body["ticket_types"][0]["checked_in"], 3);
    let entries = report.body["double_entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(
        (entry["kind"].as_str(), entry["ticket"].as_str()),
        (Some("double_entry"), Some(plain(&order, 0).as_str()))
    );
    assert_eq!((entry["device"].as_str(), entry["scanned_at"].as_str()), (Some("South door"), Some(south_at.as_str())));
    assert_eq!(entry["first"]["device"], "North door");
    assert_eq!(entry["first"]["checked_in_at"], north_at.as_str());
    assert_eq!(entry["first"]["offline"], true);

    // Bad batches change nothing.
    app.post("/api/v1/checkins/offline", &json!({"scans": []}), Some(&north))
        .await
        .expect_error(422, "validation_failed");
    let too_many: Vec<Value> =
        (0..101).map(|_| json!({"code": ticket, "scan_id": Uuid::new_v4(), "scanned_at": &ago(50)})).collect();
    app.post("/api/v1/checkins/offline", &json!({"scans": too_many}), Some(&north))
        .await
        .expect_error(422, "validation_failed");
    app.post(
        "/api/v1/checkins/offline",
        &json!({"scans": [{"code": ticket, "scan_id": Uuid::new_v4()}]}),
        Some(&north),
    )
    .await
    .expect_error(422, "validation_failed");
    let scans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkin_scans").fetch_one(&app.pool).await.unwrap();
    assert_eq!(scans, 4);
}
