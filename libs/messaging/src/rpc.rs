//! JSON-RPC 2.0 over RabbitMQ, the request/reply pattern (`contract::rpc` says what travels):
//!
//! - [`serve`] answers the calls of one queue: each request is parsed, checked, handed to the
//!   [`Procedures`], and its reply published to `reply_to` with the request's `correlation_id`
//!   before the request is acknowledged. A request that cannot be answered (no `reply_to` or
//!   `correlation_id`) is dropped and counted; any other bad request gets its JSON-RPC error.
//! - [`RpcClient`] makes calls: many callers share one connection and channel, consuming
//!   replies through RabbitMQ's direct reply-to; each waits for its own reply, a reply that
//!   comes after its caller gave up is discarded and counted, a call that no server would take
//!   fails at once, and a lost connection fails the calls in flight and is made again by the
//!   next call.
//!
//! Both sides trace through `telemetry::rpc`: the caller's CLIENT span is the parent of the
//! server's SERVER span, across the broker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::rpc::{self, Request, Response, codes};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use telemetry::rpc::{OTHER_METHOD, RpcOutcome};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::publisher::Publisher;
use crate::subscription::{ACK_TIMEOUT, ConsumerStatus, Process, Subscription};

/// The largest request a server reads; a larger one is an invalid request.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The methods a server answers.
pub trait Procedures: Send + Sync + 'static {
    /// The method's name as one of this server's, or `None` when it has no such method (the
    /// name then never becomes a label).
    fn method(&self, name: &str) -> Option<&'static str>;

    /// Calls `method` (one of [`Procedures::method`]'s) with `params`.
    fn call(
        &self,
        method: &'static str,
        params: Value,
    ) -> impl Future<Output = Result<Value, rpc::Error>> + Send;

    /// Whether this request is left unanswered, on purpose (a fault): it is then acknowledged
    /// without a reply, and its caller times out. Asked in the request's span.
    fn leaves_unanswered(&self) -> bool {
        false
    }
}

/// Declares an RPC queue: durable, on the default exchange.
pub async fn declare_queue(channel: &Channel, queue: &str) -> lapin::Result<()> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(drop)
}

/// Answers the calls of `queue` with `procedures` until `shutdown`, reconnecting whenever the
/// broker goes away; `prefetch` calls are answered at once.
pub async fn serve<P: Procedures>(
    amqp_url: String,
    queue: &'static str,
    prefetch: u16,
    procedures: Arc<P>,
    status: ConsumerStatus,
    shutdown: impl Future<Output = ()> + Send,
) {
    let subscription = Subscription {
        amqp_url,
        queue,
        prefetch,
        declare: Arc::new(move |channel| {
            Box::pin(async move { declare_queue(&channel, queue).await })
        }),
    };
    let answering = Arc::new(Answering { queue, procedures });
    crate::subscription::run(subscription, answering, status, shutdown).await;
}

struct Answering<P> {
    queue: &'static str,
    procedures: Arc<P>,
}

/// A request read as far as it can be: the id to answer with, and the call or why there is none.
fn read_request(body: &[u8]) -> (Value, Result<Request, rpc::Error>) {
    if body.len() > MAX_REQUEST_BYTES {
        let error = rpc::Error::new(
            codes::INVALID_REQUEST,
            format!("the request is larger than {MAX_REQUEST_BYTES} bytes"),
        );
        return (Value::Null, Err(error));
    }
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(error) => {
            let error = rpc::Error::new(codes::PARSE_ERROR, format!("not JSON: {error}"));
            return (Value::Null, Err(error));
        }
    };
    let id = match &value {
        Value::Object(object) => object.get("id").cloned().unwrap_or(Value::Null),
        Value::Array(_) => {
            let error = rpc::Error::new(codes::INVALID_REQUEST, "batches are not supported");
            return (Value::Null, Err(error));
        }
        _ => Value::Null,
    };
    let request = serde_json::from_value::<Request>(value).map_err(|error| {
        rpc::Error::new(
            codes::INVALID_REQUEST,
            format!("not a JSON-RPC 2.0 request: {error}"),
        )
    });
    (id, request)
}

fn text(value: &Option<lapin::types::ShortString>) -> Option<&str> {
    value
        .as_ref()
        .map(|text| text.as_str())
        .filter(|text| !text.is_empty())
}

impl<P: Procedures> Process for Answering<P> {
    async fn process(&self, delivery: Delivery, publisher: Publisher) {
        let started = Instant::now();
        let properties = &delivery.properties;
        let (Some(reply_to), Some(correlation_id)) = (
            text(properties.reply_to()),
            text(properties.correlation_id()),
        ) else {
            let reason = if text(properties.reply_to()).is_none() {
                "no_reply_to"
            } else {
                "no_correlation_id"
            };
            telemetry::rpc::record_dropped(reason);
            tracing::debug!(reason, "an RPC request that cannot be answered was dropped");
            let _ =
                tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await;
            return;
        };
        let (id, request) = read_request(&delivery.data);
        let method = request
            .as_ref()
            .ok()
            .and_then(|request| self.procedures.method(&request.method));
        let span = telemetry::rpc::server_span(
            method.unwrap_or(OTHER_METHOD),
            self.queue,
            correlation_id,
            properties.headers().as_ref(),
        );
        if span.in_scope(|| self.procedures.leaves_unanswered()) {
            let _ =
                tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await;
            return;
        }
        let outcome = async {
            match (request, method) {
                (Err(error), _) => Err(error),
                (Ok(request), None) => Err(rpc::Error::new(
                    codes::METHOD_NOT_FOUND,
                    format!("there is no method {:?}", request.method),
                )),
                (Ok(request), Some(method)) => self.procedures.call(method, request.params).await,
            }
        }
        .instrument(span.clone())
        .await;
        let (response, recorded) = match outcome {
            Ok(result) => (Response::result(id, result), RpcOutcome::Ok),
            Err(error) => {
                telemetry::rpc::record_error_code(&span, error.code);
                (Response::error(id, error), RpcOutcome::Error)
            }
        };
        let body = serde_json::to_vec(&response).expect("a response serializes");
        match publisher.reply(reply_to, correlation_id, &body).await {
            Ok(()) => {
                let _ = tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default()))
                    .await;
            }
            Err(error) => {
                // Unanswered, so not acknowledged: the broker gives it to a server again.
                tracing::warn!(parent: &span, %error, "could not publish an RPC reply; the request goes back to its queue");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                let _ = tokio::time::timeout(ACK_TIMEOUT, delivery.nack(requeue)).await;
            }
        }
        telemetry::rpc::record_server(method.unwrap_or(OTHER_METHOD), recorded, started.elapsed());
    }
}

/// Why a call got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The call was not sent: no server consumes the queue, or the broker cannot be reached.
    #[error("no server can take the call: {0}")]
    Unavailable(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection went away while the call was in flight: it may or may not have run.
    #[error("the connection to the broker was lost during the call")]
    ConnectionLost,
    /// The server answered with this error.
    #[error("the server answered error {}: {}", .0.code, .0.message)]
    Remote(rpc::Error),
    /// The server answered something this client cannot read.
    #[error("the server's reply cannot be read: {0}")]
    Malformed(String),
}

impl CallError {
    fn outcome(&self) -> RpcOutcome {
        match self {
            CallError::Timeout(_) => RpcOutcome::Timeout,
            CallError::Remote(_) | CallError::Malformed(_) => RpcOutcome::Error,
            CallError::Unavailable(_) | CallError::ConnectionLost => RpcOutcome::Unavailable,
        }
    }
}

/// Calls in flight, by correlation id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// How long a known consumer count of the queue is trusted before it is asked again.
const CONSUMERS_TRUSTED_FOR: Duration = Duration::from_secs(1);
/// The longest wait for a connection when a call needs one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A caller of the procedures on one queue, shared by every caller of a process.
pub struct RpcClient {
    url: String,
    queue: &'static str,
    timeout: Duration,
    current: tokio::sync::Mutex<Option<Arc<Connected>>>,
}

/// One connection's state: the channel that publishes calls and consumes their replies (direct
/// reply-to needs both on one channel), and a second one that asks how many servers consume.
struct Connected {
    connection: Connection,
    channel: Channel,
    check: tokio::sync::Mutex<Option<Channel>>,
    consumers: Mutex<Option<(Instant, u32)>>,
    pending: Pending,
    replies: tokio::task::JoinHandle<()>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

impl RpcClient {
    pub fn new(url: String, queue: &'static str, timeout: Duration) -> Self {
        Self {
            url,
            queue,
            timeout,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Calls `method` with `params` and reads its result as `R`.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        let span = telemetry::rpc::client_span(method, self.queue, &correlation_id);
        let outcome = self
            .exchange(method, params, &correlation_id, &span)
            .instrument(span.clone())
            .await;
        let outcome = outcome.and_then(|result| {
            serde_json::from_value(result).map_err(|error| CallError::Malformed(error.to_string()))
        });
        let recorded = match &outcome {
            Ok(_) => RpcOutcome::Ok,
            Err(error) => {
                match error {
                    CallError::Remote(remote) => {
                        telemetry::rpc::record_error_code(&span, remote.code)
                    }
                    other => telemetry::record_error(&span, other.outcome_name()),
                }
                error.outcome()
            }
        };
        telemetry::rpc::record_client(method, recorded, started.elapsed());
        outcome
    }

    /// Sends the request and waits for its reply; the result, or why there is none.
    async fn exchange<P: Serialize>(
        &self,
        method: &'static str,
        params: &P,
        correlation_id: &str,
        span: &tracing::Span,
    ) -> Result<Value, CallError> {
        let connected = self.connected().await?;
        if connected.consumer_count(self.queue).await == 0 {
            return Err(CallError::Unavailable(format!(
                "no server consumes {}",
                self.queue
            )));
        }
        let request = Request {
            jsonrpc: rpc::Version::V2,
            id: Value::String(correlation_id.to_owned()),
            method: method.to_owned(),
            params: serde_json::to_value(params).expect("params serialize"),
        };
        let body = serde_json::to_vec(&request).expect("a request serializes");
        let (sender, reply) = oneshot::channel();
        connected
            .pending
            .lock()
            .unwrap()
            .insert(correlation_id.to_owned(), sender);
        // Whatever happens below, the call stops waiting: a reply after this is late.
        let _forget = Forget(&connected.pending, correlation_id);
        let mut headers = FieldTable::default();
        telemetry::amqp::inject_headers(span, &mut headers);
        let properties = BasicProperties::default()
            .with_reply_to(contract::broker::DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation_id.into())
            .with_content_type("application/json".into())
            // A request whose caller gave up is not worth answering.
            .with_expiration(self.timeout.as_millis().to_string().into())
            .with_headers(headers);
        let confirmation = async {
            connected
                .channel
                .basic_publish(
                    "".into(),
                    self.queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    properties,
                )
                .await?
                .await
        };
        let sent = match tokio::time::timeout(self.timeout, confirmation).await {
            Err(_) => return Err(CallError::Timeout(self.timeout)),
            Ok(sent) => sent,
        };
        match sent {
            Ok(Confirmation::Ack(None)) => {}
            Ok(Confirmation::Ack(Some(_))) => {
                connected.forget_consumers();
                return Err(CallError::Unavailable(format!(
                    "no queue {} to take the call",
                    self.queue
                )));
            }
            Ok(_) => return Err(CallError::Unavailable("the broker refused the call".into())),
            Err(error) => {
                self.forget(&connected).await;
                return Err(CallError::Unavailable(error.to_string()));
            }
        }
        let reply = match tokio::time::timeout(self.timeout, reply).await {
            Err(_) => return Err(CallError::Timeout(self.timeout)),
            Ok(Err(_)) => {
                self.forget(&connected).await;
                return Err(CallError::ConnectionLost);
            }
            Ok(Ok(reply)) => reply,
        };
        let response: Response = serde_json::from_slice(&reply)
            .map_err(|error| CallError::Malformed(error.to_string()))?;
        match response.outcome {
            rpc::Outcome::Result(result) => Ok(result),
            rpc::Outcome::Error(error) => Err(CallError::Remote(error)),
        }
    }

    /// The current connection, or a new one; callers wait here only while one is being made.
    async fn connected(&self) -> Result<Arc<Connected>, CallError> {
        let mut current = self.current.lock().await;
        if let Some(connected) = current.as_ref()
            && connected.connection.status().connected()
        {
            return Ok(Arc::clone(connected));
        }
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, Connected::open(&self.url))
            .await
            .map_err(|_| {
                CallError::Unavailable(format!("no connection within {CONNECT_TIMEOUT:?}"))
            })?
            .map_err(|error| CallError::Unavailable(error.to_string()))?;
        let connected = Arc::new(connected);
        *current = Some(Arc::clone(&connected));
        Ok(connected)
    }

    /// Drops `failed` unless a newer connection replaced it already.
    async fn forget(&self, failed: &Arc<Connected>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|now| Arc::ptr_eq(now, failed)) {
            *current = None;
        }
    }
}

impl CallError {
    /// The bounded `error.type` of a call's span.
    fn outcome_name(&self) -> &'static str {
        match self {
            CallError::Unavailable(_) => "unavailable",
            CallError::Timeout(_) => "timeout",
            CallError::ConnectionLost => "connection_lost",
            CallError::Remote(_) => "remote",
            CallError::Malformed(_) => "malformed",
        }
    }
}

/// Removes a call from the pending ones when it stops waiting, whichever way.
struct Forget<'a>(&'a Pending, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().remove(self.1);
    }
}

impl Connected {
    async fn open(url: &str) -> lapin::Result<Self> {
        let connection = crate::connect(url).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let replies = channel
            .basic_consume(
                contract::broker::DIRECT_REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending = Pending::default();
        let replies = telemetry::spawn(deliver_replies(replies, Arc::clone(&pending)));
        Ok(Self {
            connection,
            channel,
            check: tokio::sync::Mutex::new(None),
            consumers: Mutex::new(None),
            pending,
            replies,
        })
    }

    /// How many servers consume `queue`: asked of the broker at most once a second while there
    /// are some, and at once when there were none (one may have come back).
    async fn consumer_count(&self, queue: &str) -> u32 {
        if let Some((asked, count)) = *self.consumers.lock().unwrap()
            && count > 0
            && asked.elapsed() < CONSUMERS_TRUSTED_FOR
        {
            return count;
        }
        let mut check = self.check.lock().await;
        let count = async {
            if check
                .as_ref()
                .is_none_or(|channel| !channel.status().connected())
            {
                *check = Some(self.connection.create_channel().await?);
            }
            let channel = check.as_ref().expect("opened above");
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
                .map(|queue| queue.consumer_count())
        }
        .await
        // A missing queue (which closes the channel) has no consumer either.
        .unwrap_or(0);
        *self.consumers.lock().unwrap() = Some((Instant::now(), count));
        count
    }

    fn forget_consumers(&self) {
        *self.consumers.lock().unwrap() = None;
    }
}

/// Hands each reply to the call waiting for it; a reply nobody waits for is late. When the
/// replies stop (the connection is gone), the calls in flight are failed by dropping them.
async fn deliver_replies(mut replies: lapin::Consumer, pending: Pending) {
    while let Some(Ok(reply)) = replies.next().await {
        let waiting = reply
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|id| pending.lock().unwrap().remove(id.as_str()));
        match waiting {
            Some(waiting) => {
                let _ = waiting.send(reply.data);
            }
            None => telemetry::rpc::record_late_reply(),
        }
    }
    pending.lock().unwrap().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_get_the_error_json_rpc_names() {
        let code = |body: &[u8]| read_request(body).1.unwrap_err().code;
        assert_eq!(code(b"not json"), codes::PARSE_ERROR);
        assert_eq!(
            code(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]"),
            codes::INVALID_REQUEST
        );
        assert_eq!(code(b"42"), codes::INVALID_REQUEST);
        assert_eq!(code(br#"{"id": 3, "method": "x"}"#), codes::INVALID_REQUEST);
        assert_eq!(
            code(&vec![b' '; MAX_REQUEST_BYTES + 1]),
            codes::INVALID_REQUEST
        );
        let (id, request) =
            read_request(br#"{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":1}}"#);
        assert_eq!(id, Value::from("a"));
        assert_eq!(request.unwrap().method, "m");
        let (id, _) = read_request(br#"{"jsonrpc":"1.0","id":9,"method":"m"}"#);
        assert_eq!(id, Value::from(9), "the id is kept for the error reply");
    }
}
