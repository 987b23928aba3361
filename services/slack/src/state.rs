//! What the slack service's handlers and slack-queue share: the message store and the webhook.

use crate::configuration::Settings;
use crate::store::MessageStore;
use crate::webhook::{self, Delivery, DeliveryError, Webhook};

#[derive(Clone)]
pub struct AppState {
    pub store: MessageStore,
    /// `None` when no `SLACK_WEBHOOK_URL` is set.
    pub webhook: Option<Webhook>,
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
    pub fn new(settings: &Settings) -> Result<Self, StateError> {
        webhook::describe_metrics();
        let webhook = settings
            .webhook_url
            .clone()
            .map(|url| Webhook::new(url, settings.webhook_timeout, settings.webhook_attempts))
            .transpose()?;
        Ok(Self {
            store: MessageStore::new(&settings.redis_url, &settings.key_prefix)?,
            webhook,
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
