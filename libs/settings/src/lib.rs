//! Reading settings from the environment: the one reader every process of the stack uses (its
//! services' settings and the telemetry configuration alike), so a bad value is reported the
//! same way everywhere, naming its variable, and a deployment typo fails at start-up instead of
//! silently falling back to a default.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// A setting that cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct SettingsError {
    pub variable: &'static str,
    /// The value as given, or a placeholder when the value is a secret.
    pub value: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(
        variable: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            variable,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Where settings come from: the process environment ([`Env`]), or any
/// `Fn(&str) -> Option<String>` (a map in tests).
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;

    /// The trimmed value of `name`, if set and not blank.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// `name` parsed, `default` when unset; `reason` says what was expected.
    fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        reason: &str,
    ) -> Result<T, SettingsError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| SettingsError::new(name, value, reason)),
        }
    }

    /// `name` as milliseconds, `default_ms` when unset.
    fn millis(&self, name: &'static str, default_ms: u64) -> Result<Duration, SettingsError> {
        self.parse(name, default_ms, "expected milliseconds")
            .map(Duration::from_millis)
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Lookup for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String> + ?Sized> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// `LISTEN_HOST`, shared by every process of the stack: all interfaces by default, as a
/// container needs.
pub fn listen_host(lookup: &impl Lookup) -> Result<IpAddr, SettingsError> {
    lookup.parse(
        "LISTEN_HOST",
        IpAddr::from([0, 0, 0, 0]),
        "expected an IP address",
    )
}

/// `REDIS_URL`, shared by the processes that use Redis: the local server by default.
pub fn redis_url(lookup: &impl Lookup) -> String {
    lookup
        .text("REDIS_URL")
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |asked: &str| (asked == name).then(|| value.to_owned())
    }

    #[test]
    fn values_are_trimmed_blank_is_unset_and_bad_values_name_their_variable() {
        assert_eq!(only("PORT", " 80 ").parse("PORT", 1u16, "a port"), Ok(80));
        assert_eq!(only("PORT", "  ").parse("PORT", 1u16, "a port"), Ok(1));
        let error = only("PORT", "eighty")
            .parse("PORT", 1u16, "expected a port number")
            .unwrap_err();
        assert_eq!(error.variable, "PORT");
        assert_eq!(
            error.to_string(),
            "invalid PORT=\"eighty\": expected a port number"
        );
        assert_eq!(
            only("WAIT_MS", "250").millis("WAIT_MS", 5),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            listen_host(&only("LISTEN_HOST", "::1")),
            Ok("::1".parse().unwrap())
        );
    }
}
