//! The slack service's settings, read from the environment with defaults that work against the
//! local Redis and RabbitMQ.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use messaging::ConsumerSettings;
use service_kit::faults::FaultSettings;
use service_kit::headers::GatewayTrust;
use settings::{Env, Lookup, SettingsError, listen_host};

pub const DEFAULT_PORT: u16 = 8102;
pub const DEFAULT_QUEUE_PORT: u16 = 9102;

/// A URL that is a credential (a Slack webhook's path is its secret): it prints as
/// `[redacted]`, so it cannot slip into a log line, a span or an error body.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(reqwest::Url);

impl SecretUrl {
    pub fn expose(&self) -> &reqwest::Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN_HOST` and `SLACK_PORT`.
    pub listen: SocketAddr,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_KEY_PREFIX`: every key this service writes starts with it.
    pub key_prefix: String,
    /// `SLACK_WEBHOOK_URL`: when set, every message is also posted there.
    pub webhook_url: Option<SecretUrl>,
    /// `SLACK_WEBHOOK_TIMEOUT_MS`: one webhook call's limit.
    pub webhook_timeout: Duration,
    /// `SLACK_WEBHOOK_ATTEMPTS`: calls per message before giving up (5xx, 429, timeouts).
    pub webhook_attempts: u32,
    /// `AMQP_URL`: where the slack service publishes `message.created` events.
    pub amqp_url: String,
    pub faults: FaultSettings,
    /// `INTERNAL_TOKEN`: which requests come from the gateway.
    pub gateway: GatewayTrust,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse("SLACK_PORT", DEFAULT_PORT, "expected a port number")?;
        let webhook_url = match lookup.text("SLACK_WEBHOOK_URL")? {
            None => None,
            Some(url) => match reqwest::Url::parse(&url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(SecretUrl(url)),
                _ => {
                    return Err(SettingsError::new(
                        "SLACK_WEBHOOK_URL",
                        "[redacted]",
                        "expected an http(s) URL",
                    ));
                }
            },
        };
        let listen = SocketAddr::new(listen_host(lookup)?, port);
        let development = settings::development_mode(lookup, listen.ip())?;
        Ok(Self {
            listen,
            redis_url: settings::redis_url(lookup)?,
            key_prefix: lookup
                .get("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "slack:".to_owned()),
            webhook_url,
            webhook_timeout: lookup.millis("SLACK_WEBHOOK_TIMEOUT_MS", 5000)?,
            webhook_attempts: lookup
                .parse::<u32>("SLACK_WEBHOOK_ATTEMPTS", 3, "expected a whole number")?
                .max(1),
            amqp_url: messaging::amqp_url(lookup)?,
            faults: FaultSettings::from_lookup(lookup, development)?,
            gateway: GatewayTrust::from_lookup(lookup, development)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `LISTEN_HOST` and `SLACK_QUEUE_PORT`: health and metrics.
    pub listen: SocketAddr,
    pub slack: Settings,
    pub consumer: ConsumerSettings,
}

impl QueueSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse(
            "SLACK_QUEUE_PORT",
            DEFAULT_QUEUE_PORT,
            "expected a port number",
        )?;
        Ok(Self {
            listen: SocketAddr::new(listen_host(lookup)?, port),
            slack: Settings::from_lookup(lookup)?,
            consumer: ConsumerSettings::from_lookup(lookup, messaging::topology::SLACK_QUEUE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_never_prints() {
        let secret = "https://hooks.slack.com/services/T000/B000/s3cr3t";
        let settings = Settings::from_lookup(&|name: &str| {
            (name == "SLACK_WEBHOOK_URL").then(|| secret.into())
        })
        .unwrap();
        assert!(!format!("{settings:?}").contains("s3cr3t"));
        let error = Settings::from_lookup(&|name: &str| {
            (name == "SLACK_WEBHOOK_URL").then(|| "ftp://s3cr3t".into())
        })
        .unwrap_err();
        assert_eq!(error.variable, "SLACK_WEBHOOK_URL");
        assert!(!error.to_string().contains("s3cr3t"));
    }
}
