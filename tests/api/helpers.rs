//! The untyped helpers of the tests not yet moved to the kit's typed client
//! (stripe.rs, stripe_strict.rs, stripe_emulator.rs): the kit's
//! [`nts_testkit::TestApp`] with JSON-in, JSON-out calls.

use std::ops::{Deref, DerefMut};

use reqwest::Method;
use serde_json::{json, Value};

pub use nts_testkit::{Answer, ADMIN_TOKEN};

pub struct TestApp(pub nts_testkit::TestApp);

impl Deref for TestApp {
    type Target = nts_testkit::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

pub async fn new_app(settings: &[(&str, &str)]) -> TestApp {
    TestApp(nts_testkit::new_app(settings).await)
}

impl TestApp {
    pub async fn call_on(
        &self,
        instance: usize,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
        key: Option<&str>,
    ) -> Answer {
        let api = self.api_on(instance);
        let api = match key {
            Some(k) => api.with_key(k),
            None => api,
        };
        api.send_json(method, path, body, bearer).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>, bearer: Option<&str>) -> Answer {
        self.call_on(self.instances.len() - 1, method, path, body, bearer, None).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, bearer).await
    }

    pub async fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), bearer).await
    }

    pub async fn create_event(&self, ticket_types: &[(&str, i64, i64, i64)]) -> Value {
        let tts: Vec<Value> = ticket_types
            .iter()
            .map(|(name, price, capacity, max)| json!({"name": name, "price_minor": price, "capacity": capacity, "max_per_order": max}))
            .collect();
        let body = json!({
            "name": "Test night", "venue": "The Hall", "currency": "GBP",
            "starts_at": "2099-01-01T20:00:00Z", "ticket_types": tts,
        });
        self.post("/api/v1/admin/events", &body, Some(ADMIN_TOKEN)).await.expect(201).clone()
    }

    pub async fn simple_event(&self, capacity: i64, max_per_order: i64) -> (String, String) {
        let e = self.create_event(&[("General", 999, capacity, max_per_order)]).await;
        (e["id"].as_str().unwrap().to_owned(), e["ticket_types"][0]["id"].as_str().unwrap().to_owned())
    }

    pub async fn hold(&self, event: &str, tt: &str, quantity: i64) -> Answer {
        let body =
            json!({"ticket_type_id": tt, "quantity": quantity, "name": "Ada Lovelace", "email": "ada@example.com"});
        self.post(&format!("/api/v1/events/{event}/holds"), &body, None).await
    }

    pub async fn checkout(&self, event: &str, tt: &str, quantity: i64) -> Value {
        let hold = self.hold(event, tt, quantity).await.expect(201).clone();
        let path = format!("/api/v1/holds/{}/checkout", hold["id"].as_str().unwrap());
        self.post(&path, &json!({}), hold["secret"].as_str()).await.expect(201).clone()
    }

    pub async fn counters(&self, tt: &str) -> (i32, i32) {
        self.sold_and_held(tt.parse().unwrap()).await
    }
}
