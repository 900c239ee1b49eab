//! A `graphql-transport-ws` client socket, as the benchmark drives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Received;

const PROTOCOL: &str = "graphql-transport-ws";
/// How long the ack may take.
const ACK_WAIT: Duration = Duration::from_secs(15);

/// How the server ended a socket.
#[derive(Debug, Clone)]
pub enum Closed {
    /// A close frame, with its code and reason.
    Frame(u16, String),
    /// The connection ended without one.
    Lost(String),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Frame(code, reason) => write!(f, "closed by the server: {code} {reason:?}"),
            Closed::Lost(why) => write!(f, "connection lost: {why}"),
        }
    }
}

/// What arrived next.
enum Next {
    Message(Value),
    Closed(Closed),
}

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// Opens a socket and completes `connection_init` with `token`.
    pub async fn connect(url: &str, token: &str) -> Result<Self> {
        let mut request = url.into_client_request().context("a socket request")?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("opening the socket")?;
        let mut s = Self { ws };
        s.send(json!({"type": "connection_init",
                      "payload": {"authorization": format!("Bearer {token}")}}))
            .await?;
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, s.next()).await {
                Err(_) => bail!("no connection_ack within {} s", ACK_WAIT.as_secs()),
                Ok(Next::Message(m)) if m["type"] == "connection_ack" => return Ok(s),
                Ok(Next::Message(m)) if m["type"] == "pong" => {}
                Ok(Next::Message(m)) => bail!("expected connection_ack, got {m}"),
                Ok(Next::Closed(c)) => bail!("expected connection_ack; {c}"),
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<()> {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .context("sending on the socket")
    }

    /// Subscribes with `id` (the protocol answers only with events, or an
    /// `error` message).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) -> Result<()> {
        self.send(json!({"type": "subscribe", "id": id,
                         "payload": {"query": query, "variables": variables}}))
            .await
    }

    /// The next protocol message, or how the socket ended.
    async fn next(&mut self) -> Next {
        loop {
            match self.ws.next().await {
                None => return Next::Closed(Closed::Lost("end of stream".to_owned())),
                Some(Err(e)) => return Next::Closed(Closed::Lost(e.to_string())),
                Some(Ok(Message::Text(t))) => {
                    return match serde_json::from_str(t.as_str()) {
                        Ok(v) => Next::Message(v),
                        Err(_) => Next::Message(json!({"type": "(not JSON)", "text": t.as_str()})),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return Next::Closed(match frame {
                        Some(f) => Closed::Frame(u16::from(f.code), f.reason.to_string()),
                        None => Closed::Frame(1005, String::new()),
                    });
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes the socket (1000) and waits, briefly, for the server's close.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            }))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Holds an idle socket until `stop`, then closes it; what it got
    /// meanwhile (anything at all, or a close) is described.
    pub async fn watch_idle(
        mut self,
        index: usize,
        mut stop: watch::Receiver<bool>,
    ) -> Option<String> {
        let started = Instant::now();
        let mut seen = None;
        loop {
            tokio::select! {
                next = self.next() => match next {
                    Next::Message(m) => {
                        if seen.is_none() {
                            seen = Some(format!(
                                "socket {index}: got {} after {:.1} s",
                                m.to_string().chars().take(300).collect::<String>(),
                                started.elapsed().as_secs_f64()
                            ));
                        }
                    }
                    Next::Closed(c) => {
                        return Some(format!(
                            "socket {index}: {c} after {:.1} s idle",
                            started.elapsed().as_secs_f64()
                        ));
                    }
                },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.close().await;
        seen
    }

    /// Receives `next` messages of subscription `m` until every message
    /// 1..=`messages` arrived, the server closed the socket, or `stop`.
    /// Each message's first receipt counts in `counts` (by index).
    pub async fn receive(
        mut self,
        messages: usize,
        counts: Arc<Vec<AtomicUsize>>,
        mut stop: watch::Receiver<bool>,
    ) -> Received {
        let mut got = Received {
            at: vec![None; messages + 1],
            duplicates: 0,
            errors: Vec::new(),
            closed: None,
        };
        let mut outstanding = messages;
        while outstanding > 0 {
            let m = tokio::select! {
                next = self.next() => match next {
                    Next::Message(m) => m,
                    Next::Closed(c) => {
                        got.closed = Some(c);
                        return got;
                    }
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            let now = Instant::now();
            if m["type"] != "next" || m["id"] != "m" {
                got.errors.push(m.to_string().chars().take(300).collect());
                continue;
            }
            if let Some(errors) = m["payload"].get("errors") {
                got.errors
                    .push(errors.to_string().chars().take(300).collect());
            }
            let index = m["payload"]["data"]["messageAdded"]["body"]
                .as_str()
                .and_then(|b| b.strip_prefix("live-bench #"))
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i <= messages);
            let Some(i) = index else {
                got.errors.push(format!(
                    "an unexpected message: {}",
                    m.to_string().chars().take(300).collect::<String>()
                ));
                continue;
            };
            if got.at[i].is_some() {
                // The warm-up may be sent more than once; only measured
                // messages count as duplicates.
                if i > 0 {
                    got.duplicates += 1;
                }
                continue;
            }
            got.at[i] = Some(now);
            counts[i].fetch_add(1, Ordering::Relaxed);
            if i > 0 {
                outstanding -= 1;
            }
        }
        self.close().await;
        got
    }
}
