//! One virtual client = one keep-alive HTTP/1.1 connection, driven with
//! hyper's connection API: no pool lookups or redirects, so the load
//! generator spends as little CPU per request as it can.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// No answer after this long counts as an error (and the connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What the server answered, or why there is no answer.
pub enum Reply {
    Answer { status: StatusCode, body: Bytes },
    Failed(String),
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            sender: None,
        }
    }

    /// Opens the connection now, so connecting is not part of the measurement.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        extra: Option<(&str, &str)>,
        body: Option<Bytes>,
    ) -> Reply {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.try_send(method, path, bearer, extra, body)).await {
            Ok(Ok((status, body))) => Reply::Answer { status, body },
            Ok(Err(e)) => {
                self.sender = None;
                Reply::Failed(format!("{e:#}"))
            }
            Err(_) => {
                self.sender = None;
                Reply::Failed("timeout".into())
            }
        }
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        extra: Option<(&str, &str)>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        let mut req = Request::builder().method(method).uri(path).header(HOST, self.host.clone());
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        }
        let req = match body {
            Some(b) => req.header(CONTENT_TYPE, "application/json").body(Full::new(b))?,
            None => req.body(Full::new(Bytes::new()))?,
        };
        let res = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
