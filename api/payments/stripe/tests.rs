use super::*;

fn facts(json: serde_json::Value) -> PaymentIntentFacts {
    serde_json::from_value(json).unwrap()
}

#[test]
fn a_declined_intent_is_a_failed_attempt_with_its_code() {
    let intent = facts(serde_json::json!({
        "id": "pi_1", "status": "requires_payment_method", "amount": 1998, "currency": "gbp",
        "metadata": {"nts_order_id": "00000000-0000-0000-0000-000000000001", "order_id": "x"},
        "last_payment_error": {"code": "card_declined", "type": "card_error"},
        "client_secret": "pi_1_secret"
    }))
    .into_intent(false);
    assert_eq!(intent.status, IntentStatus::Failed { code: "card_declined".into() });
    assert_eq!(intent.currency, "GBP");
    assert_eq!(intent.order_id, Some(Uuid::from_u128(1)));
    assert_eq!(intent.payment_id, None);
    assert_eq!(intent.client_secret, None, "the secret would let anyone confirm the intent");
}

#[test]
fn only_an_intent_awaiting_authentication_shows_its_client_secret() {
    let intent = facts(serde_json::json!({
        "id": "pi_2", "status": "requires_action", "amount": 5, "currency": "eur", "client_secret": "pi_2_secret"
    }))
    .into_intent(false);
    assert_eq!(intent.status, IntentStatus::RequiresAction { client_secret: "pi_2_secret".into() });
    assert_eq!(intent.client_secret.as_deref(), Some("pi_2_secret"));
    let fresh =
        facts(serde_json::json!({"id": "pi_3", "status": "requires_payment_method", "amount": 5, "currency": "eur"}));
    assert_eq!(fresh.into_intent(false).status, IntentStatus::Open);
}

fn request(payment_id: Uuid, amount: Money) -> IntentRequest {
    IntentRequest {
        idempotency_key: format!("nts-pay-{payment_id}"),
        order_id: Uuid::from_u128(7),
        payment_id,
        amount,
        payment_method: Some("pm_card_visa".into()),
        return_url: Some("https://tickets.example/order.html#id=7".into()),
    }
}

#[test]
fn the_same_attempt_is_encoded_to_the_same_bytes_every_time() {
    let gbp = Money::new(1998, Currency::parse("GBP").unwrap()).unwrap();
    let first = CreateIntent::new(&request(Uuid::from_u128(9), gbp)).unwrap().build().body.unwrap();
    for _ in 0..200 {
        // A fresh request, fresh maps: nothing may depend on a map's iteration order.
        let again = CreateIntent::new(&request(Uuid::from_u128(9), gbp)).unwrap().build().body.unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(
        first,
        "amount=1998&currency=gbp&allowed_payment_method_types[0]=card&confirm=true\
         &metadata[nts_order_id]=00000000-0000-0000-0000-000000000007\
         &metadata[nts_payment_id]=00000000-0000-0000-0000-000000000009\
         &payment_method=pm_card_visa&return_url=https://tickets.example/order.html%23id%3D7&use_stripe_sdk=true"
    );
}

#[test]
fn amounts_follow_stripes_currency_rules() {
    let body = |minor, code| {
        CreateIntent::new(&request(Uuid::from_u128(1), Money::new(minor, Currency::parse(code).unwrap()).unwrap()))
            .map(|c| c.build().body.unwrap())
    };
    assert!(body(1500, "ISK").unwrap().starts_with("amount=150000&currency=isk&"));
    assert!(body(1500, "JPY").unwrap().starts_with("amount=1500&currency=jpy&"));
    assert!(body(150_000, "HUF").unwrap().starts_with("amount=150000&currency=huf&"));
    assert!(matches!(body(150_050, "HUF"), Err(GatewayError::Refused { .. })));
    assert!(matches!(body(5000, "UGX"), Err(GatewayError::Refused { .. })));
    let isk = facts(serde_json::json!({"id": "pi_9", "status": "succeeded", "amount": 150000, "currency": "isk"}));
    assert_eq!(isk.into_intent(false).amount_minor, 1500, "read back in krónur");
}

#[test]
fn no_answer_is_an_unknown_outcome() {
    assert!(matches!(classify(StripeError::Timeout), GatewayError::Unknown(_)));
    assert!(matches!(classify(StripeError::ClientError("reset".into())), GatewayError::Unknown(_)));
}
