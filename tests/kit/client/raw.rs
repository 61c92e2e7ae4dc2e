//! Requests the typed methods would never send: malformed bodies, wrong
//! content types, hostile headers, paths outside the API. Answers keep the
//! body as untyped JSON.

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::Client;

/// An answer to a raw request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        &self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        assert_eq!(self.code(), code, "unexpected error body: {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {}", self.body);
    }

    /// Reads a response: JSON when it is, else the text as a JSON string (`null` when empty).
    pub async fn read(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, body, headers }
    }
}

impl Client {
    /// A request to `path` with nothing set but the client's idempotency key, if any.
    pub fn raw(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, None)
    }

    /// Sends `body` as JSON (whatever its shape) with an optional bearer token.
    pub async fn send_json(&self, method: Method, path: &str, body: Option<&Value>, bearer: Option<&str>) -> Answer {
        let mut req = self.request(method, path, bearer);
        if let Some(b) = body {
            req = req.json(b);
        }
        Answer::read(req.send().await.expect("request sent")).await
    }

    /// Sends raw bytes with a content type, for malformed-input tests.
    pub async fn post_bytes(&self, path: &str, content_type: Option<&str>, body: &'static str) -> Answer {
        let mut req = self.request(Method::POST, path, None).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Answer::read(req.send().await.expect("request sent")).await
    }
}
