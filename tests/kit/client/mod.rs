//! A typed client of nts's HTTP API: one method per endpoint of openapi.yaml,
//! answering the wire structs of [`wire`]; errors come back as [`ApiError`].
//! [`Client::raw`] sends anything at all, for tests of malformed or hostile requests.

mod admin;
mod checkin;
mod raw;
mod sales;
pub mod wire;

use std::ops::Deref;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use raw::Answer;

/// A success: the status (one the endpoint documents), the headers and the decoded body,
/// whose fields read through (`reply.id`; the status is `http_status` so that it never
/// hides a body's own `status`).
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub http_status: StatusCode,
    pub headers: HeaderMap,
    pub body: T,
}

impl<T> Deref for Reply<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.body
    }
}

/// Any other answer: the status with the error body's `code` and `message`
/// (empty when the body is not an error body; `body` has it as sent). When no
/// answer came at all (refused connection, timeout) the status is 502 and the
/// code `unreachable`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl ApiError {
    /// The body as another shape (e.g. a refused scan's [`wire::CheckinRefusal`]).
    #[track_caller]
    pub fn body_as<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {} ({})", self.status, self.code, self.message, self.body)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<Reply<T>, ApiError>;

/// Assertions on an answer, for tests.
pub trait Expect<T> {
    /// Asserts success with this very status (for endpoints with more than one); answers the reply.
    fn expect_status(self, status: u16) -> Reply<T>;
    /// Asserts the status and `code`, and that a message explains it; answers the error.
    fn expect_error(self, status: u16, code: &str) -> ApiError;
}

impl<T: std::fmt::Debug> Expect<T> for ApiResult<T> {
    #[track_caller]
    fn expect_status(self, status: u16) -> Reply<T> {
        match self {
            Ok(reply) => {
                assert_eq!(reply.http_status.as_u16(), status, "unexpected answer: {:?}", reply.body);
                reply
            }
            Err(e) => panic!("expected {status}, got {e:?}"),
        }
    }

    #[track_caller]
    fn expect_error(self, status: u16, code: &str) -> ApiError {
        let error = match self {
            Ok(reply) => panic!("expected {status} {code}, got {} {:?}", reply.http_status, reply.body),
            Err(e) => e,
        };
        assert_eq!(error.status.as_u16(), status, "unexpected answer: {}", error.body);
        assert_eq!(error.code, code, "unexpected error body: {}", error.body);
        assert!(!error.message.is_empty(), "error without message: {}", error.body);
        error
    }
}

/// A client of one nts instance. Cheap to clone; the `with_*` methods answer a modified copy.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_token: String,
    key: Option<String>,
    headers: Vec<(String, String)>,
}

impl Client {
    /// `base` is the instance's root, e.g. `http://127.0.0.1:9000`.
    pub fn new(http: reqwest::Client, base: impl Into<String>, admin_token: impl Into<String>) -> Self {
        Client { http, base: base.into(), admin_token: admin_token.into(), key: None, headers: Vec::new() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The same client sending `Idempotency-Key: key` with every request.
    pub fn with_key(&self, key: &str) -> Self {
        Client { key: Some(key.to_owned()), ..self.clone() }
    }

    /// The same client adding `name: value` to every request (e.g. a proxy's `X-Forwarded-For`).
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut client = self.clone();
        client.headers.push((name.to_owned(), value.to_owned()));
        client
    }

    /// The same client presenting another admin token.
    pub fn with_admin_token(&self, token: &str) -> Self {
        Client { admin_token: token.to_owned(), ..self.clone() }
    }

    fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(key) = &self.key {
            req = req.header("Idempotency-Key", key);
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        req
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, Some(&self.admin_token))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, bearer: Option<&str>) -> ApiResult<T> {
        send(self.request(Method::GET, path, bearer), &[StatusCode::OK]).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &B,
        ok: &[StatusCode],
    ) -> ApiResult<T> {
        send(self.request(Method::POST, path, bearer).json(body), ok).await
    }
}

/// Sends `req`; a status in `ok` must come with a body of type `T`.
async fn send<T: DeserializeOwned>(req: RequestBuilder, ok: &[StatusCode]) -> ApiResult<T> {
    let (status, headers, bytes) = fetch(req).await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !ok.contains(&status) {
        return Err(error(status, headers, text));
    }
    let json = if bytes.is_empty() { b"null".as_slice() } else { &bytes };
    match serde_json::from_slice(json) {
        Ok(body) => Ok(Reply { http_status: status, headers, body }),
        Err(e) => Err(ApiError {
            status,
            code: String::new(),
            message: format!("undecodable answer: {e}"),
            headers,
            body: text,
        }),
    }
}

/// Sends `req`; answers the raw body when the status is in `ok`.
async fn send_bytes(req: RequestBuilder, ok: &[StatusCode]) -> ApiResult<Vec<u8>> {
    let (status, headers, bytes) = fetch(req).await?;
    if !ok.contains(&status) {
        return Err(error(status, headers, String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(Reply { http_status: status, headers, body: bytes })
}

async fn fetch(req: RequestBuilder) -> Result<(StatusCode, HeaderMap, Vec<u8>), ApiError> {
    let unreachable = |e: reqwest::Error| ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "unreachable".into(),
        message: e.to_string(),
        headers: HeaderMap::new(),
        body: String::new(),
    };
    let res = req.send().await.map_err(unreachable)?;
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.bytes().await.map_err(unreachable)?;
    Ok((status, headers, bytes.to_vec()))
}

fn error(status: StatusCode, headers: HeaderMap, body: String) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Coded {
        code: String,
        message: String,
    }
    let (code, message) = match serde_json::from_str::<Coded>(&body) {
        Ok(c) => (c.code, c.message),
        Err(_) => (String::new(), String::new()),
    };
    ApiError { status, code, message, headers, body }
}
