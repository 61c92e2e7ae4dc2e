//! The simulated provider's own records, against a real database.

use super::*;
use crate::domain::{Currency, Money};
use crate::test_db::TestDb;

fn request(key: &str, minor: i64) -> IntentRequest {
    IntentRequest {
        idempotency_key: key.into(),
        order_id: Uuid::new_v4(),
        payment_id: Uuid::new_v4(),
        amount: Money::new(minor, Currency::parse("EUR").unwrap()).unwrap(),
        payment_method: None,
        return_url: None,
    }
}

async fn intents(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM simulated_intents").fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn several_intents_are_made_at_once_and_a_key_made_before_answers_its_own() {
    let db = TestDb::new().await;
    let gateway = SimulatedGateway::new(db.pool.clone(), SimulatedFaults::default());
    let earlier = gateway.create_intent(&request("key-earlier", 500)).await.unwrap();
    let mut with_card = request("key-card", 700);
    with_card.payment_method = Some("pm_card_visa".into());
    let reqs = [request("key-a", 100), request("key-earlier", 999), with_card, request("key-b", 200)];

    let answers = gateway.create_intents(&reqs).await;

    assert_eq!(answers.len(), 4, "one answer per request, in their order");
    let a = answers[0].as_ref().unwrap();
    assert_eq!((a.amount_minor, a.payment_id, a.status.clone()), (100, Some(reqs[0].payment_id), IntentStatus::Open));
    let again = answers[1].as_ref().unwrap();
    assert_eq!(again.provider_ref, earlier.provider_ref, "the key's first intent, not a second one");
    assert_eq!(again.amount_minor, 500, "as first made: the key's later request changes nothing");
    assert!(matches!(&answers[2], Err(GatewayError::Refused { code, .. }) if code == "payment_method_unsupported"));
    let b = answers[3].as_ref().unwrap();
    assert_eq!((b.amount_minor, b.payment_id), (200, Some(reqs[3].payment_id)));
    assert_ne!(a.provider_ref, b.provider_ref);
    assert_eq!(intents(&db).await, 3, "the earlier one, a and b");
    let made_together: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT xmin::text) FROM simulated_intents WHERE idempotency_key IN ('key-a', 'key-b')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(made_together, 1, "one statement made both");
}

#[tokio::test]
async fn a_lost_storage_answers_every_request_unknown_and_the_same_keys_later_make_each_once() {
    let db = TestDb::new().await;
    let gateway = SimulatedGateway::new(db.pool.clone(), SimulatedFaults::default());
    let reqs = [request("key-1", 100), request("key-2", 200)];
    sqlx::query("ALTER TABLE simulated_intents RENAME TO simulated_intents_away").execute(&db.pool).await.unwrap();
    let lost = gateway.create_intents(&reqs).await;
    assert!(lost.iter().all(|a| matches!(a, Err(GatewayError::Unknown(_)))), "{lost:?}");
    sqlx::query("ALTER TABLE simulated_intents_away RENAME TO simulated_intents").execute(&db.pool).await.unwrap();

    let first = gateway.create_intents(&reqs).await;
    let again = gateway.create_intents(&reqs).await;
    for (one, two) in first.iter().zip(&again) {
        assert_eq!(one.as_ref().unwrap().provider_ref, two.as_ref().unwrap().provider_ref);
    }
    assert_eq!(intents(&db).await, 2);
}
