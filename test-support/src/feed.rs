//! A client of the gateway's live feed (`GET /ws/events`), for tests: connects, reads frames as
//! JSON, and tells how it was closed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct FeedClient {
    socket: Socket,
    protocol: Option<String>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server sent a close frame with this code and reason.
    Closed(u16, String),
    /// The connection dropped without one.
    Dropped,
}

impl FeedClient {
    /// Connects to `ws://<gateway>/ws/events<query>` with `token`; panics with the answer if it
    /// is refused.
    pub async fn connect(gateway: &str, token: &str, query: &str) -> Self {
        match Self::try_connect(gateway, token, query).await {
            Ok(client) => client,
            Err(error) => panic!("the feed at {gateway} refused the upgrade: {error}"),
        }
    }

    /// The same, or the HTTP status the upgrade was refused with. The token goes in
    /// `Authorization`, as a client that is not a browser sends it.
    pub async fn try_connect(gateway: &str, token: &str, query: &str) -> Result<Self, String> {
        Self::try_connect_with(
            gateway,
            query,
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    }

    /// The upgrade with these `headers` only (a browser's `Origin` and subprotocols, say).
    pub async fn try_connect_with(
        gateway: &str,
        query: &str,
        headers: &[(&'static str, String)],
    ) -> Result<Self, String> {
        let url = format!(
            "{}/ws/events{query}",
            gateway.replacen("http://", "ws://", 1)
        );
        let mut request = url
            .into_client_request()
            .map_err(|error| error.to_string())?;
        for (name, value) in headers {
            request.headers_mut().insert(
                *name,
                value.parse().map_err(|_| format!("a bad {name} header"))?,
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, response)) => Ok(Self {
                socket,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16().to_string())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The next frame, as JSON, within `timeout`; `None` when there is none in time.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// `count` frames, or a panic naming how many came within `timeout`.
    pub async fn frames(&mut self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut frames = Vec::with_capacity(count);
        while frames.len() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(frame) => frames.push(frame),
                None => panic!("{} of {count} frames within {timeout:?}", frames.len()),
            }
        }
        frames
    }

    /// Sends `message` as the client.
    pub async fn send(&mut self, message: Message) {
        let _ = self.socket.send(message).await;
    }

    /// Reads until the connection ends (within `timeout`), skipping frames.
    pub async fn ended(&mut self, timeout: Duration) -> Option<Ended> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Ended::Dropped),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(match frame {
                        Some(frame) => {
                            Ended::Closed(u16::from(frame.code), frame.reason.to_string())
                        }
                        None => Ended::Closed(u16::from(CloseCode::Status), String::new()),
                    });
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}
