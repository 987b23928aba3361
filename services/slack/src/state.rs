//! What the slack service's handlers and slack-queue share: the message store and the webhook.

use service_kit::faults::Faults;

use crate::configuration::Settings;
use crate::store::MessageStore;
use crate::webhook::{self, Delivery, DeliveryError, Webhook};

#[derive(Clone)]
pub struct AppState {
    pub store: MessageStore,
    /// `None` when no `SLACK_WEBHOOK_URL` is set.
    pub webhook: Option<Webhook>,
    /// The faults switched on at run time, as this process sees them.
    pub faults: Faults,
}

/// Why the state cannot be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot build the webhook client: {0}")]
    Webhook(#[from] reqwest::Error),
}

impl AppState {
    /// The state of the process `service` (slack or slack-queue).
    pub fn new(settings: &Settings, service: &'static str) -> Result<Self, StateError> {
        webhook::describe_metrics();
        let faults = Faults::start(&settings.faults, service);
        let webhook = settings
            .webhook_url
            .clone()
            .map(|url| {
                Webhook::new(
                    url,
                    settings.webhook_timeout,
                    settings.webhook_attempts,
                    faults.clone(),
                )
            })
            .transpose()?;
        Ok(Self {
            store: MessageStore::new(&settings.redis_url, &settings.key_prefix)?,
            webhook,
            faults,
        })
    }

    /// Posts `text` to `channel` on the webhook, if there is one: the one place that decides
    /// and counts what became of a delivery (sent or skipped, else why not).
    pub async fn deliver(&self, channel: &str, text: &str) -> Result<Delivery, DeliveryError> {
        match &self.webhook {
            None => {
                webhook::record(Delivery::Skipped);
                Ok(Delivery::Skipped)
            }
            Some(webhook) => webhook
                .deliver(channel, text)
                .await
                .map(|()| Delivery::Sent),
        }
    }
}
