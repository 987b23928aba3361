//! The gateway's settings, read from the environment with defaults that reach the services of
//! the local stack.

use std::net::SocketAddr;
use std::time::Duration;

use contract::tokens::{DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};
use reqwest::Url;
use service_kit::faults::FaultSettings;
use settings::{Env, Lookup, Secret, SettingsError, development_mode, listen_host};

use telemetry::TelemetryConfig;

use crate::client::TrustedProxies;

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 asks of HS256 keys.
pub const MIN_SECRET_BYTES: usize = 32;

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
    /// `DEV_MODE`: development conveniences on (`/dev/token`, the development secret, faults
    /// on by default). Unset, on when the gateway listens on loopback only.
    pub development: bool,
    /// `JWT_PUBLIC_KEY` (RS256) if set, else `JWT_SECRET` (HS256), else, in development mode
    /// only, the development secret.
    pub token_key: TokenKey,
    /// `JWT_AUDIENCE`: tokens must name it in `aud`.
    pub audience: String,
    /// `JWT_ISSUER`: when set, tokens must name it in `iss`.
    pub issuer: Option<String>,
    /// `JWT_MAX_TTL_SECONDS` (86400): the longest a token may be valid (`exp` - `iat`).
    pub max_token_lifetime: Duration,
    /// `RATE_LIMIT_PER_SECOND` and `RATE_LIMIT_BURST`: per client.
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// `AVAILABILITY_RATE_LIMIT_PER_SECOND` (5) and `AVAILABILITY_RATE_LIMIT_BURST` (10): per
    /// client, on `GET /users/availability`, which tells whether an email is registered.
    pub availability_rate_per_second: u32,
    pub availability_rate_burst: u32,
    /// `TRUSTED_PROXIES`: the proxies (CIDRs) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (or `*`) a browser may call from; none
    /// by default, the page's own origin needing none.
    pub cors_origins: Vec<String>,
    /// `AMQP_URL`: where asynchronous commands are published and RPC calls made.
    pub amqp_url: String,
    /// `RPC_TIMEOUT_MS`: how long a call to the user service over RabbitMQ may take.
    pub rpc_timeout: Duration,
    /// `WS_MAX_CONNECTIONS`: live-feed clients at once; the next upgrade is a 503.
    pub ws_max_connections: usize,
    /// `WS_MAX_CONNECTIONS_PER_CLIENT` (20): live-feed clients at once from one client.
    pub ws_max_connections_per_client: usize,
    /// `WS_PING_INTERVAL_MS`: how often the feed pings its clients (one that answers nothing
    /// for two intervals is closed).
    pub ws_ping_interval: Duration,
    /// `ZIPKIN_UI_URL`, `GRAFANA_URL`, `PROMETHEUS_URL`: where the page links to.
    pub zipkin_ui_url: String,
    pub grafana_url: String,
    pub prometheus_url: String,
    /// The faults switched on at run time, and `/admin/faults` while they are enabled.
    pub faults: FaultSettings,
    /// `OTEL_TRUST_INBOUND_CONTEXT` (true): whether a caller's trace context is continued;
    /// `false` starts a new trace at the edge, linked to the caller's.
    pub trust_inbound_context: bool,
    /// `INTERNAL_TOKEN`: the secret sent to the services behind, so they believe the
    /// `x-enduser-id` the gateway names.
    pub internal_token: Option<Secret>,
    /// Where the page's relayed spans go: the process's own telemetry configuration.
    pub telemetry: TelemetryConfig,
}

fn upstream(
    lookup: &impl Lookup,
    name: &'static str,
    variable: &'static str,
    default: &str,
) -> Result<Upstream, SettingsError> {
    let raw = lookup.text(variable)?.unwrap_or_else(|| default.to_owned());
    match Url::parse(&raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Upstream { name, url }),
        _ => Err(SettingsError::new(variable, raw, "expected an http(s) URL")),
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse("GATEWAY_PORT", DEFAULT_PORT, "expected a port number")?;
        let listen = SocketAddr::new(listen_host(lookup)?, port);
        let development = development_mode(lookup, listen.ip())?;
        let cors_origins = lookup
            .text("CORS_ALLOWED_ORIGINS")?
            .unwrap_or_default()
            .split(',')
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        let count = |variable, default: usize| -> Result<usize, SettingsError> {
            Ok(lookup
                .parse::<usize>(variable, default, "expected a whole number")?
                .max(1))
        };
        let rate = |variable, default: u32| -> Result<u32, SettingsError> {
            Ok(lookup
                .parse::<u32>(variable, default, "expected a whole number")?
                .max(1))
        };
        Ok(Self {
            listen,
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
            development,
            token_key: token_key(lookup, development)?,
            audience: lookup
                .text("JWT_AUDIENCE")?
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            issuer: lookup.text("JWT_ISSUER")?,
            max_token_lifetime: Duration::from_secs(
                lookup
                    .parse::<u64>("JWT_MAX_TTL_SECONDS", 86_400, "expected seconds")?
                    .max(1),
            ),
            rate_per_second: rate("RATE_LIMIT_PER_SECOND", 100)?,
            rate_burst: rate("RATE_LIMIT_BURST", 200)?,
            availability_rate_per_second: rate("AVAILABILITY_RATE_LIMIT_PER_SECOND", 5)?,
            availability_rate_burst: rate("AVAILABILITY_RATE_LIMIT_BURST", 10)?,
            trusted_proxies: TrustedProxies::from_lookup(lookup)?,
            cors_origins,
            amqp_url: messaging::amqp_url(lookup)?,
            rpc_timeout: lookup.millis("RPC_TIMEOUT_MS", 2000)?,
            ws_max_connections: count("WS_MAX_CONNECTIONS", 1000)?,
            ws_max_connections_per_client: count("WS_MAX_CONNECTIONS_PER_CLIENT", 20)?,
            ws_ping_interval: lookup
                .millis("WS_PING_INTERVAL_MS", 15_000)?
                .max(Duration::from_millis(100)),
            zipkin_ui_url: lookup
                .text("ZIPKIN_UI_URL")?
                .unwrap_or_else(|| "http://localhost:9411/zipkin".to_owned()),
            grafana_url: lookup
                .text("GRAFANA_URL")?
                .unwrap_or_else(|| "http://localhost:3000".to_owned()),
            prometheus_url: lookup
                .text("PROMETHEUS_URL")?
                .unwrap_or_else(|| "http://localhost:9090".to_owned()),
            faults: FaultSettings::from_lookup(lookup, development)?,
            trust_inbound_context: lookup.flag("OTEL_TRUST_INBOUND_CONTEXT", true)?,
            internal_token: lookup.text("INTERNAL_TOKEN")?.map(Secret::new),
            telemetry: TelemetryConfig::from_lookup(lookup)?,
        })
    }

    /// The secret development tokens are signed with: in development mode, when tokens are
    /// checked with a shared secret (a public key's tokens come from their issuer).
    pub fn development_secret(&self) -> Option<&str> {
        match &self.token_key {
            TokenKey::Secret(secret) if self.development => Some(secret),
            _ => None,
        }
    }
}

/// How tokens are checked: `JWT_PUBLIC_KEY`, else `JWT_SECRET`, else (development mode only)
/// the development secret. Blank is an error, as everywhere; a short secret, or the public
/// development secret outside development mode, too.
fn token_key(lookup: &impl Lookup, development: bool) -> Result<TokenKey, SettingsError> {
    if let Some(pem) = lookup.text("JWT_PUBLIC_KEY")? {
        if jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).is_err() {
            return Err(SettingsError::new(
                "JWT_PUBLIC_KEY",
                "[PEM]",
                "expected an RSA public key in PEM",
            ));
        }
        return Ok(TokenKey::RsaPublicKey(pem));
    }
    match lookup.text("JWT_SECRET")? {
        Some(secret) if secret == DEVELOPMENT_SECRET && !development => Err(SettingsError::new(
            "JWT_SECRET",
            "[the public development secret]",
            "is public: outside development mode (DEV_MODE) set a secret of your own",
        )),
        Some(secret) if secret.len() < MIN_SECRET_BYTES => Err(SettingsError::new(
            "JWT_SECRET",
            "[redacted]",
            format!("is shorter than {MIN_SECRET_BYTES} bytes"),
        )),
        Some(secret) => Ok(TokenKey::Secret(secret)),
        None if development => Ok(TokenKey::Secret(DEVELOPMENT_SECRET.to_owned())),
        None => Err(SettingsError::new(
            "JWT_SECRET",
            "",
            "is not set, nor JWT_PUBLIC_KEY: outside development mode (DEV_MODE) tokens need a key of your own",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(set, _)| *set == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    const OWN_SECRET: &str = "an-own-secret-of-at-least-32-bytes-long";

    #[test]
    fn natively_the_gateway_listens_on_loopback_in_development_mode() {
        let settings = Settings::from_lookup(&given(&[])).unwrap();
        assert!(settings.listen.ip().is_loopback());
        assert!(settings.development);
        assert_eq!(
            settings.token_key,
            TokenKey::Secret(DEVELOPMENT_SECRET.into())
        );
        assert!(settings.faults.enabled);
        assert!(
            settings.cors_origins.is_empty(),
            "no other origin by default"
        );
        assert!(settings.development_secret().is_some());
    }

    #[test]
    fn on_every_interface_development_mode_is_off_unless_asked() {
        let error = Settings::from_lookup(&given(&[("LISTEN_HOST", "0.0.0.0")])).unwrap_err();
        assert_eq!(error.variable, "JWT_SECRET", "no key of its own: {error}");
        let settings = Settings::from_lookup(&given(&[
            ("LISTEN_HOST", "0.0.0.0"),
            ("JWT_SECRET", OWN_SECRET),
        ]))
        .unwrap();
        assert!(!settings.development);
        assert!(!settings.faults.enabled, "faults off unless FAULTS_ENABLED");
        assert_eq!(settings.development_secret(), None);
        let asked =
            Settings::from_lookup(&given(&[("LISTEN_HOST", "0.0.0.0"), ("DEV_MODE", "true")]))
                .unwrap();
        assert!(asked.development && asked.faults.enabled);
        let faults = Settings::from_lookup(&given(&[
            ("LISTEN_HOST", "0.0.0.0"),
            ("JWT_SECRET", OWN_SECRET),
            ("FAULTS_ENABLED", "true"),
        ]))
        .unwrap();
        assert!(faults.faults.enabled);
    }

    #[test]
    fn a_blank_short_or_public_secret_is_a_start_up_error_naming_it() {
        for (pairs, variable) in [
            (&[("JWT_SECRET", "")][..], "JWT_SECRET"),
            (&[("JWT_SECRET", "   ")][..], "JWT_SECRET"),
            (&[("JWT_PUBLIC_KEY", "")][..], "JWT_PUBLIC_KEY"),
            (&[("JWT_SECRET", "tiny-secret")][..], "JWT_SECRET"),
            (
                &[("DEV_MODE", "false"), ("JWT_SECRET", DEVELOPMENT_SECRET)][..],
                "JWT_SECRET",
            ),
            (&[("DEV_MODE", "maybe")][..], "DEV_MODE"),
        ] {
            let leaked: &'static [(&'static str, &'static str)] = Box::leak(pairs.to_vec().into());
            let error = Settings::from_lookup(&given(leaked)).unwrap_err();
            assert_eq!(error.variable, variable, "{pairs:?}: {error}");
            assert!(
                !error.to_string().contains("tiny-secret"),
                "no secret in {error}"
            );
        }
    }
}
