//! A `graphql-transport-ws` client for the live-update tests: the protocol
//! as the `graphql-ws` client library speaks it, over a real WebSocket.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::app::TestApp;

pub struct LiveClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server did next.
#[derive(Debug)]
pub enum Got {
    /// A protocol message.
    Message(Value),
    /// The socket was closed, with this code.
    Closed(u16),
    /// Nothing within the wait.
    Nothing,
}

impl LiveClient {
    /// Opens a socket speaking `graphql-transport-ws` (nothing sent yet).
    pub async fn open(app: &TestApp) -> Self {
        Self::open_at(app.addr, Some("graphql-transport-ws")).await
    }

    pub async fn open_with_protocol(app: &TestApp, protocol: Option<&str>) -> Self {
        Self::open_at(app.addr, protocol).await
    }

    /// Opens a socket to the server at `addr`.
    pub async fn open_at(addr: SocketAddr, protocol: Option<&str>) -> Self {
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .expect("a request");
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("opening the socket");
        Self { socket }
    }

    /// Opens a socket and completes `connection_init` with `token`,
    /// expecting the ack.
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        Self::connect_at(app.addr, token).await
    }

    /// [`LiveClient::connect`] to the server at `addr`.
    pub async fn connect_at(addr: SocketAddr, token: &str) -> Self {
        let mut client = Self::open_at(addr, Some("graphql-transport-ws")).await;
        client
            .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
            .await;
        match client.next(Duration::from_secs(5)).await {
            Got::Message(m) if m["type"] == "connection_ack" => client,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sending");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("sending");
    }

    /// Subscribes with `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// The next protocol message or close, within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Got::Nothing,
                Ok(None) => return Got::Closed(1006),
                Ok(Some(Err(_))) => return Got::Closed(1006),
                Ok(Some(Ok(f))) => f,
            };
            match frame {
                Message::Text(t) => {
                    return Got::Message(serde_json::from_str(t.as_str()).expect("JSON message"));
                }
                Message::Close(frame) => {
                    return Got::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                }
                _ => {}
            }
        }
    }

    /// The next `next` message's payload for `id`, within `wait` (panics on
    /// anything else).
    pub async fn next_payload(&mut self, id: &str, wait: Duration) -> Value {
        match self.next(wait).await {
            Got::Message(m) if m["type"] == "next" && m["id"] == id => m["payload"].clone(),
            other => panic!("expected next for {id}, got {other:?}"),
        }
    }

    /// The close code the server ends with, within `wait` (panics on a
    /// message or silence).
    pub async fn closed(&mut self, wait: Duration) -> u16 {
        loop {
            match self.next(wait).await {
                Got::Closed(code) => return code,
                Got::Message(m) if m["type"] == "pong" => continue,
                other => panic!("expected the socket to close, got {other:?}"),
            }
        }
    }
}
