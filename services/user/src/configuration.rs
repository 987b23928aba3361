//! The user service's settings, read from the environment with defaults that work against the
//! local Postgres.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A setting that cannot be used, naming its variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN_HOST` and `USER_PORT`: where the API listens.
    pub listen: SocketAddr,
    /// `DATABASE_URL`: the database is created if it does not exist.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool size.
    pub max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`: how long a request waits for a connection before it
    /// answers 503.
    pub acquire_timeout: Duration,
}

pub const DEFAULT_PORT: u16 = 8101;
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/users";

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        fn parse<T: std::str::FromStr>(
            lookup: &impl Fn(&str) -> Option<String>,
            variable: &'static str,
            default: T,
            reason: &'static str,
        ) -> Result<T, SettingsError> {
            match lookup(variable).filter(|value| !value.trim().is_empty()) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| SettingsError {
                    variable,
                    value,
                    reason,
                }),
            }
        }
        let host: IpAddr = parse(
            &lookup,
            "LISTEN_HOST",
            IpAddr::from([0, 0, 0, 0]),
            "expected an IP address",
        )?;
        let port: u16 = parse(&lookup, "USER_PORT", DEFAULT_PORT, "expected a port number")?;
        let max_connections: u32 = parse(
            &lookup,
            "DATABASE_MAX_CONNECTIONS",
            10,
            "expected a whole number",
        )?;
        let acquire_timeout_ms: u64 = parse(
            &lookup,
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            2000,
            "expected milliseconds",
        )?;
        let database_url = lookup("DATABASE_URL")
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(SettingsError {
                variable: "DATABASE_URL",
                value: telemetry::redact_url(&database_url),
                reason: "expected a postgres:// URL",
            });
        }
        Ok(Self {
            listen: SocketAddr::new(host, port),
            database_url,
            max_connections: max_connections.max(1),
            acquire_timeout: Duration::from_millis(acquire_timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_variable() {
        let error =
            Settings::from_lookup(|name| (name == "USER_PORT").then(|| "http".into())).unwrap_err();
        assert_eq!(error.variable, "USER_PORT");
        let error = Settings::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| "mysql://root:pw@db/users".into())
        })
        .unwrap_err();
        assert_eq!(error.variable, "DATABASE_URL");
        assert!(!error.to_string().contains("pw"));
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.listen.port(), DEFAULT_PORT);
        assert_eq!(settings.database_url, DEFAULT_DATABASE_URL);
    }
}
