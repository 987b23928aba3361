//! The live feed, `GET /ws/events`: a WebSocket that receives one JSON text frame per event
//! (`contract::feed::Frame`), in the order this gateway received them.
//!
//! The feed costs nothing while nobody watches. Each gateway process holds one connection to the
//! broker (its readiness), and consumes the `user.created` and `message.created` events only
//! while at least one client is connected: the first client's upgrade declares a queue of this
//! gateway's own (exclusive, bound to both exchanges) and is answered once it is consumed, so a
//! client sees every event from the moment it is connected; after the last client the consumer
//! is cancelled and the queue deleted. Each delivery is received inside a CONSUMER span that
//! continues the event's trace, and fanned out to the clients through a bounded ring buffer (a
//! broadcast channel): a client that falls behind it, or does not take a frame within
//! [`SEND_TIMEOUT`], is closed (1013) and counted, and never holds memory or delays the others.
//! The server pings; a client that answers nothing for two intervals is closed. A client may
//! send nothing but ping, pong and close: anything else closes it (1003), a frame over 4 KiB
//! too (1009). The feed is live, not durable: events that come while a gateway is away from
//! the broker are not replayed to its clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use contract::events::{MessageCreated, UserCreated};
use contract::feed::{Frame, FrameEvent, TYPES};
use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use messaging::topology::{self, ExchangeType};
use opentelemetry::trace::SpanContext;
use serde::Deserialize;
use service_kit::Problem;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::client::{Client, ClientKey};
use crate::origin::AllowedOrigins;

/// The route of the feed.
pub const ROUTE: &str = "/ws/events";
/// Events a client may fall behind by before it is closed: a few seconds of a busy stack, at
/// most a few MiB of frames, held once for every client.
const BUFFER: usize = 4096;
/// The longest a frame may take to be taken by a client.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// The longest a client's upgrade waits for the feed's queue to be consumed.
const LIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The exchanges the feed's queue is bound to, with their routing keys.
const BINDINGS: [(&str, &str); 2] = [
    (
        contract::broker::USERS_EXCHANGE,
        contract::broker::USER_CREATED,
    ),
    (
        contract::broker::MESSAGES_EXCHANGE,
        contract::broker::MESSAGE_CREATED,
    ),
];

/// One event, ready for every client: its frame in JSON, and the span that received it.
#[derive(Debug)]
struct Event {
    event_type: &'static str,
    id: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    json: String,
    received_in: SpanContext,
}

/// Who may connect to a feed, and how many at once.
pub struct FeedAccess {
    /// Checks the client's token (in `Authorization`, or as the `bearer.<token>` subprotocol).
    pub authenticator: Authenticator,
    /// The origins besides the page's own a browser may connect from.
    pub origins: AllowedOrigins,
    /// `WS_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `WS_MAX_CONNECTIONS_PER_CLIENT`.
    pub max_per_client: usize,
}

/// The subprotocol the feed answers with; a browser offers it beside `bearer.<token>`.
pub const SUBPROTOCOL: &str = "feed";
const BEARER_SUBPROTOCOL: &str = "bearer.";

/// The feed of one gateway process.
pub struct Feed {
    events: broadcast::Sender<Arc<Event>>,
    /// The clients connected: the consumer consumes while there is one.
    clients: watch::Sender<usize>,
    /// The clients connected, per client.
    per_client: Mutex<HashMap<ClientKey, usize>>,
    access: FeedAccess,
    /// Whether the feed's queue is bound and consumed; an upgrade is answered only then.
    live: watch::Sender<bool>,
    /// Whether the gateway holds its connection to the broker: its readiness (without the
    /// broker it can neither feed its clients nor take creations or RPC calls).
    connected: AtomicBool,
    ping_interval: Duration,
    stopping: watch::Receiver<bool>,
}

impl Feed {
    pub fn new(
        access: FeedAccess,
        ping_interval: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            events: broadcast::channel(BUFFER).0,
            clients: watch::Sender::new(0),
            per_client: Mutex::default(),
            access,
            live: watch::Sender::new(false),
            connected: AtomicBool::new(false),
            ping_interval,
            stopping,
        }
    }

    /// Readiness: `Err` while the gateway has no connection to the broker.
    pub fn ready(&self) -> Result<(), String> {
        if self.connected.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("rabbitmq: the gateway has no connection to the broker".to_owned())
        }
    }

    /// Counts `client` in, unless the feed or that client has its most connections already.
    fn admit(self: &Arc<Self>, client: ClientKey) -> Result<Connected, Problem> {
        {
            let mut per_client = self.per_client.lock().expect("never poisoned");
            let theirs = per_client.entry(client).or_default();
            if *theirs >= self.access.max_per_client {
                return Err(Problem::too_many_requests(format!(
                    "this client has {} feed connections already",
                    self.access.max_per_client
                )));
            }
            *theirs += 1;
        }
        let admitted = self.clients.send_if_modified(|clients| {
            let room = *clients < self.access.max_connections;
            if room {
                *clients += 1;
            }
            room
        });
        if !admitted {
            self.leave(client);
            return Err(Problem::unavailable(format!(
                "the feed has {} clients already; try again later",
                self.access.max_connections
            )));
        }
        telemetry::websocket::record_connected(1.0);
        Ok(Connected {
            feed: Arc::clone(self),
            client,
        })
    }

    fn leave(&self, client: ClientKey) {
        let mut per_client = self.per_client.lock().expect("never poisoned");
        if let Some(theirs) = per_client.get_mut(&client) {
            *theirs -= 1;
            if *theirs == 0 {
                per_client.remove(&client);
            }
        }
    }

    /// Why the upgrade may not go ahead, if it may not: it must come from a browser on an
    /// allowed origin (or from no browser), with a valid token in `Authorization` or offered
    /// as the `bearer.<token>` subprotocol.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if !self.access.origins.admits(headers) {
            return Some(
                Problem::forbidden(
                    "this origin may not connect to the feed (CORS_ALLOWED_ORIGINS)",
                )
                .into_response(),
            );
        }
        let offered = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .find_map(|protocol| protocol.trim().strip_prefix(BEARER_SUBPROTOCOL));
        let verified = match offered {
            Some(token) if !headers.contains_key(header::AUTHORIZATION) => {
                self.access.authenticator.verify_token(token)
            }
            _ => self.access.authenticator.verify(headers),
        };
        match verified {
            Ok(caller) => {
                telemetry::http_server::record_enduser(&caller.subject.0);
                None
            }
            Err(error) => Some(error.into_response()),
        }
    }

    /// Waits until the feed's queue is consumed, for at most [`LIVE_TIMEOUT`].
    async fn until_live(&self) -> bool {
        let mut live = self.live.subscribe();
        tokio::time::timeout(LIVE_TIMEOUT, live.wait_for(|live| *live))
            .await
            .is_ok_and(|outcome| outcome.is_ok())
    }
}

/// Connects to the broker for `feed`, and consumes whenever a client is connected, until
/// `shutdown`; connects again whenever the broker goes away.
pub async fn consume(
    amqp_url: String,
    feed: Arc<Feed>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = messaging::connect_with_backoff(&amqp_url) => connection,
            () = &mut shutdown => return,
        };
        feed.connected.store(true, Ordering::Relaxed);
        let lost = tokio::select! {
            lost = consume_on_demand(&connection, &feed) => lost,
            () = &mut shutdown => {
                let _ = connection.close(200, "shutting down".into()).await;
                return;
            }
        };
        feed.connected.store(false, Ordering::Relaxed);
        feed.live.send_replace(false);
        tracing::warn!(error = %lost, "the live feed lost the broker; reconnecting");
    }
}

/// On `connection`, consumes while a client is connected and idles while none is; returns when
/// the connection fails.
async fn consume_on_demand(connection: &lapin::Connection, feed: &Feed) -> lapin::Error {
    let mut failures = connection
        .events_listener()
        .filter_map(|event| async move {
            match event {
                lapin::Event::Error(error) => Some(error),
                _ => None,
            }
        })
        .boxed();
    let mut clients = feed.clients.subscribe();
    loop {
        tokio::select! {
            () = until_clients(&mut clients, |clients| clients > 0) => {}
            error = failures.next() => return error.unwrap_or_else(closed),
        }
        let consumed = tokio::select! {
            consumed = consume_while_watched(connection, feed, &mut clients) => consumed,
            error = failures.next() => Err(error.unwrap_or_else(closed)),
        };
        feed.live.send_replace(false);
        if let Err(error) = consumed {
            return error;
        }
    }
}

/// Waits until the number of clients passes `test`.
async fn until_clients(clients: &mut watch::Receiver<usize>, test: impl Fn(usize) -> bool) {
    // The sender lives as long as the feed, so this ends only by the test.
    let _ = clients.wait_for(|clients| test(*clients)).await;
}

fn closed() -> lapin::Error {
    lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
        lapin::ConnectionState::Closed,
    ))
}

/// Declares this gateway's queue, binds it to both exchanges, and fans out what comes until no
/// client is left; then cancels the consumer and deletes the queue.
async fn consume_while_watched(
    connection: &lapin::Connection,
    feed: &Feed,
    clients: &mut watch::Receiver<usize>,
) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    for (exchange, _) in BINDINGS {
        topology::declare_exchange(&channel, exchange, ExchangeType::Topic).await?;
    }
    let queue = format!("gateway.feed.{}", uuid::Uuid::new_v4().simple());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    for (exchange, routing_key) in BINDINGS {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    feed.live.send_replace(true);
    tracing::info!(%queue, "the live feed is consuming");
    loop {
        tokio::select! {
            delivery = deliveries.next() => match delivery {
                Some(delivery) => fan_out(&queue, delivery?, feed).await,
                None => return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "the feed's consumer was cancelled",
                ))),
            },
            () = until_clients(clients, |clients| clients == 0) => {
                // Not live first, then look again: a client that came meanwhile either saw the
                // queue live before this and keeps it, or waits for the next one.
                feed.live.send_replace(false);
                if *feed.clients.borrow() == 0 {
                    break;
                }
                feed.live.send_replace(true);
            }
        }
    }
    channel
        .basic_cancel(deliveries.tag(), BasicCancelOptions::default())
        .await?;
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = channel.close(200, "no client is left".into()).await;
    tracing::info!(%queue, "the live feed stopped consuming: no client is left");
    Ok(())
}

/// Sends one delivery to every client, inside its CONSUMER span.
async fn fan_out(queue: &str, delivery: lapin::message::Delivery, feed: &Feed) {
    // A busy queue is always ready: let the clients' tasks run between deliveries.
    tokio::task::consume_budget().await;
    let routing_key = delivery.routing_key.as_str();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let span = telemetry::amqp::process_span(
        queue,
        delivery.exchange.as_str(),
        routing_key,
        &message_id,
        delivery.properties.headers().as_ref(),
    );
    let received_in = telemetry::websocket::span_context(&span);
    match span.in_scope(|| read_event(routing_key, &delivery.data, &received_in)) {
        // No client is no error: the event simply has nobody to go to.
        Some(event) => drop(feed.events.send(Arc::new(event))),
        None => telemetry::record_error(&span, "malformed"),
    }
}

/// The frame of one delivery, or `None` (logged) when it is not an event of the feed.
fn read_event(routing_key: &str, body: &[u8], received_in: &SpanContext) -> Option<Event> {
    let (id, occurred_at, event) = match routing_key {
        contract::broker::USER_CREATED => {
            let event: UserCreated = serde_json::from_slice(body)
                .inspect_err(|error| tracing::warn!(%error, "a malformed user.created"))
                .ok()?;
            (
                event.id,
                event.occurred_at,
                FrameEvent::UserCreated { user: event.user },
            )
        }
        contract::broker::MESSAGE_CREATED => {
            let event: MessageCreated = serde_json::from_slice(body)
                .inspect_err(|error| tracing::warn!(%error, "a malformed message.created"))
                .ok()?;
            (
                event.id,
                event.occurred_at,
                FrameEvent::MessageCreated {
                    message: event.message,
                },
            )
        }
        _ => return None,
    };
    let event_type = event.type_name();
    let frame = Frame {
        id,
        occurred_at,
        trace_id: received_in.trace_id().to_string(),
        event,
    };
    Some(Event {
        event_type,
        id: id.to_string(),
        occurred_at,
        json: serde_json::to_string(&frame).expect("a frame serializes"),
        received_in: received_in.clone(),
    })
}

#[derive(Debug, Deserialize)]
pub struct FeedParams {
    types: Option<String>,
}

/// The event types a client asked for, or the 400 that names the unknown one.
fn asked_types(types: Option<&str>) -> Result<Vec<&'static str>, Problem> {
    let Some(types) = types else {
        return Ok(TYPES.to_vec());
    };
    types
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            TYPES
                .into_iter()
                .find(|known| *known == name)
                .ok_or_else(|| {
                    Problem::validation(vec![service_kit::FieldError::new(
                        "types",
                        format!("unknown event type {name:?}; expected {}", TYPES.join(", ")),
                    )])
                })
        })
        .collect()
}

/// Counts the client in while it is connected.
struct Connected {
    feed: Arc<Feed>,
    client: ClientKey,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.feed.clients.send_modify(|clients| *clients -= 1);
        self.feed.leave(self.client);
        telemetry::websocket::record_connected(-1.0);
    }
}

/// `GET /ws/events`: the upgrade (an ordinary request, with its own SERVER span) once the feed
/// is consumed, or a 400 for an unknown type, or a 503 when `WS_MAX_CONNECTIONS` clients are
/// connected already or the feed cannot reach the broker.
#[utoipa::path(
    get,
    path = "/ws/events",
    tag = "feed",
    params(("types" = Option<String>, Query, description = "Comma-separated event types to receive: `user.created`, `message.created` (default both)")),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket: one JSON text frame per event"),
        (status = 400, description = "An unknown event type, or not a WebSocket upgrade", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token, in `Authorization` or as the `bearer.<token>` subprotocol", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A browser on an origin not allowed (`CORS_ALLOWED_ORIGINS`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests, or `WS_MAX_CONNECTIONS_PER_CLIENT` feeds, from this client", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "WS_MAX_CONNECTIONS clients are connected already, or the feed cannot reach the broker", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(feed): State<Arc<Feed>>,
    Client(client): Client,
    headers: HeaderMap,
    Query(params): Query<FeedParams>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Some(refused) = feed.refusal(&headers) {
        return refused;
    }
    let types = match asked_types(params.types.as_deref()) {
        Ok(types) => types,
        Err(problem) => return problem.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Problem::malformed(rejection.body_text()).into_response(),
    };
    let connected = match feed.admit(client) {
        Ok(connected) => connected,
        Err(problem) => return problem.into_response(),
    };
    // Subscribed now, so that no event between this answer and the first read is missed.
    let events = feed.events.subscribe();
    if !feed.until_live().await {
        drop(connected);
        return Problem::unavailable("the live feed cannot reach the broker; try again shortly")
            .into_response();
    }
    let upgraded_in = telemetry::websocket::span_context(&tracing::Span::current());
    let pipeline = telemetry::Pipeline::current();
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        // axum spawns the upgraded connection's task itself: it keeps the service's pipeline.
        .on_upgrade(move |socket| {
            telemetry::in_pipeline(pipeline, async move {
                let _connected = connected;
                let reason = serve_client(socket, &feed, events, &types, &upgraded_in).await;
                telemetry::websocket::record_closed(reason);
            })
        })
}

/// Why a client was closed: the close frame to send (if one can still be sent), and the
/// bounded reason counted.
struct Closing {
    frame: Option<(u16, String)>,
    reason: &'static str,
}

impl Closing {
    fn with(code: u16, text: impl Into<String>, reason: &'static str) -> Self {
        Self {
            frame: Some((code, text.into())),
            reason,
        }
    }

    fn silently(reason: &'static str) -> Self {
        Self {
            frame: None,
            reason,
        }
    }
}

/// Sends `event` to the client inside its frame span.
async fn send(
    socket: &mut WebSocket,
    event: &Event,
    upgraded_in: &SpanContext,
) -> Result<(), Closing> {
    let span = telemetry::websocket::frame_span(
        ROUTE,
        event.event_type,
        &event.id,
        &event.received_in,
        upgraded_in,
    );
    let sent = tokio::time::timeout(
        SEND_TIMEOUT,
        socket.send(WsMessage::Text(event.json.clone().into())),
    )
    .instrument(span.clone())
    .await;
    match sent {
        Ok(Ok(())) => {
            let lag = (chrono::Utc::now() - event.occurred_at)
                .to_std()
                .unwrap_or_default();
            telemetry::websocket::record_frame_sent(event.event_type, lag);
            Ok(())
        }
        Ok(Err(_)) => Err(Closing::silently("client")),
        Err(_) => {
            telemetry::record_error(&span, "timeout");
            Err(Closing::silently("slow"))
        }
    }
}

/// Serves one client until it goes or is closed; the reason it was closed.
async fn serve_client(
    mut socket: WebSocket,
    feed: &Feed,
    mut events: broadcast::Receiver<Arc<Event>>,
    types: &[&'static str],
    upgraded_in: &SpanContext,
) -> &'static str {
    let stopping = service_kit::serve::stopped(feed.stopping.clone());
    tokio::pin!(stopping);
    let mut pings = tokio::time::interval(feed.ping_interval);
    pings.tick().await;
    let mut heard = Instant::now();
    let closing = loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) if types.contains(&event.event_type) => {
                    if let Err(closing) = send(&mut socket, &event, upgraded_in).await {
                        break closing;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    break Closing::with(1013, format!("too slow: fell {missed} events behind"), "slow");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    break Closing::with(1001, "the gateway is stopping", "shutdown");
                }
            },
            message = socket.recv() => match message {
                Some(Ok(WsMessage::Pong(_) | WsMessage::Ping(_))) => heard = Instant::now(),
                Some(Ok(WsMessage::Close(_))) | None => break Closing::silently("client"),
                Some(Ok(WsMessage::Text(_) | WsMessage::Binary(_))) => {
                    break Closing::with(1003, "this feed takes no messages", "unsupported");
                }
                Some(Err(error)) => {
                    let too_large = matches!(
                        std::error::Error::source(&error)
                            .and_then(|source| source.downcast_ref::<tungstenite::Error>()),
                        Some(tungstenite::Error::Capacity(_))
                    );
                    break if too_large {
                        Closing::with(1009, "frames over 4 KiB are refused", "too_large")
                    } else {
                        Closing::silently("error")
                    };
                }
            },
            _ = pings.tick() => {
                if heard.elapsed() > feed.ping_interval * 2 {
                    break Closing::with(1001, "no answer to pings", "idle");
                }
                if socket.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break Closing::silently("client");
                }
            },
            () = &mut stopping => {
                break Closing::with(1001, "the gateway is stopping", "shutdown");
            },
        }
    };
    if let Some((code, reason)) = closing.frame {
        let close = WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
    }
    closing.reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_ask_for_known_types_only() {
        assert_eq!(asked_types(None).unwrap(), TYPES);
        assert_eq!(
            asked_types(Some("message.created")).unwrap(),
            ["message.created"]
        );
        let problem = asked_types(Some("user.created,user.deleted")).unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.errors[0].pointer, "#/types");
    }
}
