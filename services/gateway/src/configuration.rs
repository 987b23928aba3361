//! The gateway's settings, read from the environment with defaults that reach the services of
//! the local stack.

use std::net::SocketAddr;
use std::time::Duration;

use contract::tokens::{DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};
use reqwest::Url;
use service_kit::faults::FaultSettings;
use settings::{Env, Lookup, SettingsError, listen_host};

pub const DEFAULT_PORT: u16 = 8100;

/// A service behind the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its name in `/health`, problems and metrics.
    pub name: &'static str,
    pub url: Url,
}

/// How bearer tokens are checked.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenKey {
    /// HS256 with a shared secret (`JWT_SECRET`).
    Secret(String),
    /// RS256 with a PEM public key (`JWT_PUBLIC_KEY`).
    RsaPublicKey(String),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenKey::Secret(_) => f.write_str("Secret([redacted])"),
            TokenKey::RsaPublicKey(_) => f.write_str("RsaPublicKey(..)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN_HOST` and `GATEWAY_PORT`.
    pub listen: SocketAddr,
    /// `USER_URL`, `SLACK_URL`: where the API is routed.
    pub user: Upstream,
    pub slack: Upstream,
    /// `USER_QUEUE_URL`, `SLACK_QUEUE_URL`: the consumers, checked by `/health`.
    pub user_queue: Upstream,
    pub slack_queue: Upstream,
    /// `UPSTREAM_TIMEOUT_MS`: the limit of every routed call.
    pub upstream_timeout: Duration,
    /// `HEALTH_TIMEOUT_MS`: the limit of each service's check in `/health`.
    pub health_timeout: Duration,
    /// `JWT_PUBLIC_KEY` (RS256) if set, else `JWT_SECRET` (HS256), else the development secret.
    pub token_key: TokenKey,
    /// `JWT_AUDIENCE`: tokens must name it in `aud`.
    pub audience: String,
    /// `RATE_LIMIT_PER_SECOND` and `RATE_LIMIT_BURST`: per client address.
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins, or `*`.
    pub cors_origins: Vec<String>,
    /// `AMQP_URL`: where asynchronous commands are published and RPC calls made.
    pub amqp_url: String,
    /// `RPC_TIMEOUT_MS`: how long a call to the user service over RabbitMQ may take.
    pub rpc_timeout: Duration,
    /// `WS_MAX_CONNECTIONS`: live-feed clients at once; the next upgrade is a 503.
    pub ws_max_connections: usize,
    /// `WS_PING_INTERVAL_MS`: how often the feed pings its clients (one that answers nothing
    /// for two intervals is closed).
    pub ws_ping_interval: Duration,
    /// `ZIPKIN_UI_URL`, `GRAFANA_URL`, `PROMETHEUS_URL`: where the page links to.
    pub zipkin_ui_url: String,
    pub grafana_url: String,
    pub prometheus_url: String,
    /// The faults switched on at run time, and `/admin/faults` unless `FAULTS_ENABLED=false`.
    pub faults: FaultSettings,
}

fn upstream(
    lookup: &impl Lookup,
    name: &'static str,
    variable: &'static str,
    default: &str,
) -> Result<Upstream, SettingsError> {
    let raw = lookup.text(variable).unwrap_or_else(|| default.to_owned());
    match Url::parse(&raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Upstream { name, url }),
        _ => Err(SettingsError::new(variable, raw, "expected an http(s) URL")),
    }
}

impl Settings {
    /// Whether tokens are checked with the public development secret.
    pub fn development(&self) -> bool {
        self.token_key == TokenKey::Secret(DEVELOPMENT_SECRET.to_owned())
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse("GATEWAY_PORT", DEFAULT_PORT, "expected a port number")?;
        let token_key = match (lookup.get("JWT_PUBLIC_KEY"), lookup.text("JWT_SECRET")) {
            (Some(pem), _) if !pem.trim().is_empty() => {
                if jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).is_err() {
                    return Err(SettingsError::new(
                        "JWT_PUBLIC_KEY",
                        "[PEM]",
                        "expected an RSA public key in PEM",
                    ));
                }
                TokenKey::RsaPublicKey(pem)
            }
            (_, Some(secret)) => TokenKey::Secret(secret),
            (_, None) => TokenKey::Secret(DEVELOPMENT_SECRET.to_owned()),
        };
        let cors_origins = lookup
            .text("CORS_ALLOWED_ORIGINS")
            .unwrap_or_else(|| "*".to_owned())
            .split(',')
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        Ok(Self {
            listen: SocketAddr::new(listen_host(lookup)?, port),
            user: upstream(lookup, "user", "USER_URL", "http://127.0.0.1:8101")?,
            slack: upstream(lookup, "slack", "SLACK_URL", "http://127.0.0.1:8102")?,
            user_queue: upstream(
                lookup,
                "user-queue",
                "USER_QUEUE_URL",
                "http://127.0.0.1:9101",
            )?,
            slack_queue: upstream(
                lookup,
                "slack-queue",
                "SLACK_QUEUE_URL",
                "http://127.0.0.1:9102",
            )?,
            upstream_timeout: lookup.millis("UPSTREAM_TIMEOUT_MS", 5000)?,
            health_timeout: lookup.millis("HEALTH_TIMEOUT_MS", 1000)?,
            token_key,
            audience: lookup
                .text("JWT_AUDIENCE")
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            rate_per_second: lookup
                .parse::<u32>("RATE_LIMIT_PER_SECOND", 100, "expected a whole number")?
                .max(1),
            rate_burst: lookup
                .parse::<u32>("RATE_LIMIT_BURST", 200, "expected a whole number")?
                .max(1),
            cors_origins,
            amqp_url: messaging::amqp_url(lookup),
            rpc_timeout: lookup.millis("RPC_TIMEOUT_MS", 2000)?,
            ws_max_connections: lookup
                .parse::<usize>("WS_MAX_CONNECTIONS", 1000, "expected a whole number")?
                .max(1),
            ws_ping_interval: lookup
                .millis("WS_PING_INTERVAL_MS", 15_000)?
                .max(Duration::from_millis(100)),
            zipkin_ui_url: lookup
                .text("ZIPKIN_UI_URL")
                .unwrap_or_else(|| "http://localhost:9411/zipkin".to_owned()),
            grafana_url: lookup
                .text("GRAFANA_URL")
                .unwrap_or_else(|| "http://localhost:3000".to_owned()),
            prometheus_url: lookup
                .text("PROMETHEUS_URL")
                .unwrap_or_else(|| "http://localhost:9090".to_owned()),
            faults: FaultSettings::from_lookup(lookup)?,
        })
    }
}
