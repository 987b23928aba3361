//! The settings of the user service and of user-queue, read from the environment with defaults
//! that work against the local Postgres and RabbitMQ.

use std::net::SocketAddr;
use std::time::Duration;

use messaging::ConsumerSettings;
use service_kit::faults::FaultSettings;
use service_kit::headers::GatewayTrust;
use settings::{Env, Lookup, SettingsError, development_mode, listen_host};

pub const DEFAULT_PORT: u16 = 8101;
pub const DEFAULT_QUEUE_PORT: u16 = 9101;
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/users";

/// Where the users are kept, and how a request waits for them.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: the database is created if it does not exist.
    pub url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool size.
    pub max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`: how long a request waits for a connection before it
    /// answers 503.
    pub acquire_timeout: Duration,
    /// `DATABASE_RETRY_BUDGET_MS`: how long a write that lost its connection is retried
    /// before the request answers 503. Keep it, plus the acquire timeout, under the gateway's
    /// `UPSTREAM_TIMEOUT_MS`.
    pub retry_budget: Duration,
}

impl DatabaseSettings {
    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let url = lookup
            .text("DATABASE_URL")?
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(SettingsError::new(
                "DATABASE_URL",
                telemetry::redact_url(&url),
                "expected a postgres:// URL",
            ));
        }
        Ok(Self {
            url,
            max_connections: lookup
                .parse::<u32>("DATABASE_MAX_CONNECTIONS", 10, "expected a whole number")?
                .max(1),
            acquire_timeout: lookup.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2000)?,
            retry_budget: lookup.millis("DATABASE_RETRY_BUDGET_MS", 2000)?,
        })
    }
}

/// The user service: its API, and the outbox relay that publishes its events.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN_HOST` and `USER_PORT`: where the API listens.
    pub listen: SocketAddr,
    pub database: DatabaseSettings,
    /// `AMQP_URL`: where the outbox relay publishes events.
    pub amqp_url: String,
    /// `OUTBOX_POLL_INTERVAL_MS`: how often the relay looks for events when no notification
    /// wakes it.
    pub outbox_poll_interval: Duration,
    pub faults: FaultSettings,
    /// `INTERNAL_TOKEN`: which requests come from the gateway.
    pub gateway: GatewayTrust,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse("USER_PORT", DEFAULT_PORT, "expected a port number")?;
        let listen = SocketAddr::new(listen_host(lookup)?, port);
        let development = development_mode(lookup, listen.ip())?;
        Ok(Self {
            listen,
            database: DatabaseSettings::from_lookup(lookup)?,
            amqp_url: messaging::amqp_url(lookup)?,
            outbox_poll_interval: lookup.millis("OUTBOX_POLL_INTERVAL_MS", 1000)?,
            faults: FaultSettings::from_lookup(lookup, development)?,
            gateway: GatewayTrust::from_lookup(lookup, development)?,
        })
    }
}

/// user-queue: the `create_user` consumer, with `/health/*` and `/metrics`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `LISTEN_HOST` and `USER_QUEUE_PORT`: health and metrics.
    pub listen: SocketAddr,
    pub database: DatabaseSettings,
    pub consumer: ConsumerSettings,
    pub faults: FaultSettings,
}

impl QueueSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse(
            "USER_QUEUE_PORT",
            DEFAULT_QUEUE_PORT,
            "expected a port number",
        )?;
        let listen = SocketAddr::new(listen_host(lookup)?, port);
        Ok(Self {
            listen,
            database: DatabaseSettings::from_lookup(lookup)?,
            consumer: ConsumerSettings::from_lookup(lookup, messaging::topology::USER_QUEUE)?,
            faults: FaultSettings::from_lookup(lookup, development_mode(lookup, listen.ip())?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        let error =
            Settings::from_lookup(&|name: &str| (name == "USER_PORT").then(|| "http".into()))
                .unwrap_err();
        assert_eq!(error.variable, "USER_PORT");
        let error = Settings::from_lookup(&|name: &str| {
            (name == "DATABASE_URL").then(|| "mysql://root:pw@db/users".into())
        })
        .unwrap_err();
        assert_eq!(error.variable, "DATABASE_URL");
        assert!(!error.to_string().contains("pw"));
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let settings = Settings::from_lookup(&|_: &str| None).unwrap();
        assert_eq!(settings.listen.port(), DEFAULT_PORT);
        assert_eq!(settings.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(settings.amqp_url, messaging::DEFAULT_AMQP_URL);
    }
}
