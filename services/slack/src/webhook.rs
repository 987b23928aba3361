//! Delivery to a Slack incoming webhook: a bounded number of calls per message, with backoff on
//! 5xx, timeouts and refused connections, and on 429 the wait Slack asks for in `Retry-After`.
//! Other 4xx answers mean the message will never be taken, and are not retried here; nor is a
//! TLS certificate that is not trusted (the call fails at once: see `SSL_CERT_FILE` in the
//! configuration docs for a private CA).
//!
//! The webhook URL is a credential: the CLIENT span records only its origin, and no error or
//! log line quotes it.

use std::time::Duration;

use contract::faults::FaultKind;
use metrics::counter;
use reqwest::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use serde::Serialize;
use serde_json::json;
use service_kit::faults::{Faults, OutboundFaults};
use telemetry::http_client::{NoAnswer, SensitiveUrl};

use crate::configuration::SecretUrl;

pub(crate) const NOTIFICATIONS: &str = "slack_notifications_total";

/// The longest `Retry-After` honoured; a longer one fails the call (the message is retried
/// later through the retry queue, or reported as failed).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What became of the message's delivery to Slack: `sent`, `skipped` (no webhook is
/// configured), `rejected` (Slack refused it) or `failed` (Slack could not be reached).
// Also the bounded `outcome` label of `slack_notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Sent,
    /// No webhook is configured.
    Skipped,
    /// Slack refused the message (a 4xx other than 429): it never will take it.
    Rejected,
    /// Slack could not be reached, or kept failing.
    Failed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Skipped => "skipped",
            Delivery::Rejected => "rejected",
            Delivery::Failed => "failed",
        }
    }
}

pub fn record(delivery: Delivery) {
    counter!(NOTIFICATIONS, "outcome" => delivery.as_str()).increment(1);
}

pub fn describe_metrics() {
    metrics::describe_counter!(
        NOTIFICATIONS,
        "Messages delivered to the Slack webhook (or not), by outcome: sent, skipped (no webhook configured), rejected (4xx), failed."
    );
}

/// Why a delivery did not happen; never quotes the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("Slack refused the message with {0}")]
    Rejected(StatusCode),
    #[error("Slack could not be reached: {0}")]
    Failed(String),
}

impl DeliveryError {
    pub fn delivery(&self) -> Delivery {
        match self {
            DeliveryError::Rejected(_) => Delivery::Rejected,
            DeliveryError::Failed(_) => Delivery::Failed,
        }
    }
}

#[derive(Clone)]
pub struct Webhook {
    client: ClientWithMiddleware,
    url: SecretUrl,
    attempts: u32,
}

impl Webhook {
    /// A webhook whose calls the `webhook_*` faults strike.
    pub fn new(
        url: SecretUrl,
        timeout: Duration,
        attempts: u32,
        faults: Faults,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(telemetry::http_client::TracingMiddleware)
            .with(OutboundFaults {
                faults,
                latency_kind: FaultKind::WebhookLatency,
                error_kind: FaultKind::WebhookError,
            })
            .build();
        Ok(Self {
            client,
            url,
            attempts,
        })
    }

    /// Posts `{"text", "channel"}`, retrying as the module says.
    pub async fn deliver(&self, channel: &str, text: &str) -> Result<(), DeliveryError> {
        let body = json!({"text": text, "channel": channel});
        let mut backoff = Duration::from_millis(200);
        let mut last_error = DeliveryError::Failed("no attempt made".into());
        for attempt in 1..=self.attempts {
            let response = self
                .client
                .post(self.url.expose().clone())
                .with_extension(SensitiveUrl)
                .json(&body)
                .send()
                .await;
            let wait = match response {
                Ok(response) if response.status().is_success() => {
                    record(Delivery::Sent);
                    return Ok(());
                }
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    last_error = DeliveryError::Failed("rate limited (429)".into());
                    retry_after(&response).unwrap_or(backoff)
                }
                Ok(response) if response.status().is_server_error() => {
                    last_error =
                        DeliveryError::Failed(format!("Slack answered {}", response.status()));
                    backoff
                }
                Ok(response) => {
                    record(Delivery::Rejected);
                    return Err(DeliveryError::Rejected(response.status()));
                }
                Err(error) => {
                    let failure = NoAnswer::of(&error);
                    last_error = DeliveryError::Failed(describe(&failure));
                    // A certificate refused now is refused on every try.
                    if matches!(failure, NoAnswer::Tls(_)) {
                        break;
                    }
                    backoff
                }
            };
            if attempt == self.attempts || wait > MAX_RETRY_AFTER {
                break;
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %last_error, "Slack delivery will be retried");
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
        record(Delivery::Failed);
        Err(last_error)
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport failure, in words that never include the URL.
fn describe(failure: &NoAnswer) -> String {
    match failure {
        NoAnswer::Timeout => "timed out".into(),
        NoAnswer::Connect => "connection failed".into(),
        NoAnswer::Tls(reason) => format!("TLS handshake failed ({reason})"),
        NoAnswer::Other => "request failed".into(),
    }
}
