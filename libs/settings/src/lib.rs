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

    /// The trimmed value of `name`, if set. Set but blank is an error, never "unset": a
    /// deployment whose value rendered empty (a missing secret, say) must not start on a
    /// default in its place.
    fn text(&self, name: &'static str) -> Result<Option<String>, SettingsError> {
        match self.get(name).map(|value| value.trim().to_owned()) {
            Some(value) if value.is_empty() => Err(SettingsError::new(
                name,
                value,
                "is set but blank: give it a value, or unset it for the default",
            )),
            value => Ok(value),
        }
    }

    /// `name` as `true` or `false`, `default` when unset.
    fn flag(&self, name: &'static str, default: bool) -> Result<bool, SettingsError> {
        self.parse(name, default, "expected true or false")
    }

    /// `name` parsed, `default` when unset; `reason` says what was expected.
    fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        reason: &str,
    ) -> Result<T, SettingsError> {
        match self.text(name)? {
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

/// A setting that is a credential: it never prints, in a log line or a debug dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
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

/// `LISTEN_HOST`, shared by every process of the stack: loopback by default, so that what runs
/// natively with no set-up is reachable from this machine only; containers set `0.0.0.0`.
pub fn listen_host(lookup: &impl Lookup) -> Result<IpAddr, SettingsError> {
    lookup.parse(
        "LISTEN_HOST",
        IpAddr::from([127, 0, 0, 1]),
        "expected an IP address",
    )
}

/// `DEV_MODE`, shared by every process: development conveniences (the gateway's development
/// secret and `/dev/token`, faults on by default) are on when it says `true`, or, unset, when
/// the process listens on loopback only (`listen`), where nobody else can reach them.
pub fn development_mode(lookup: &impl Lookup, listen: IpAddr) -> Result<bool, SettingsError> {
    lookup.flag("DEV_MODE", listen.is_loopback())
}

/// `REDIS_URL`, shared by the processes that use Redis: the local server by default.
pub fn redis_url(lookup: &impl Lookup) -> Result<String, SettingsError> {
    Ok(lookup
        .text("REDIS_URL")?
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |asked: &str| (asked == name).then(|| value.to_owned())
    }

    #[test]
    fn values_are_trimmed_blank_is_an_error_and_bad_values_name_their_variable() {
        assert_eq!(only("PORT", " 80 ").parse("PORT", 1u16, "a port"), Ok(80));
        assert_eq!(only("OTHER", "81").parse("PORT", 1u16, "a port"), Ok(1));
        let blank = only("PORT", "  ")
            .parse("PORT", 1u16, "a port")
            .unwrap_err();
        assert_eq!(blank.variable, "PORT");
        assert!(blank.reason.contains("blank"), "{blank}");
        assert!(only("JWT_SECRET", "").text("JWT_SECRET").is_err());
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

    #[test]
    fn natively_a_process_listens_on_loopback_and_is_in_development_mode_only_there() {
        let unset = |_: &str| None;
        let host = listen_host(&unset).unwrap();
        assert!(host.is_loopback(), "{host}");
        assert_eq!(development_mode(&unset, host), Ok(true));
        assert_eq!(
            development_mode(&unset, IpAddr::from([0, 0, 0, 0])),
            Ok(false)
        );
        let asked = only("DEV_MODE", "true");
        assert_eq!(
            development_mode(&asked, IpAddr::from([0, 0, 0, 0])),
            Ok(true)
        );
        let refused = only("DEV_MODE", "false");
        assert_eq!(development_mode(&refused, host), Ok(false));
        assert!(development_mode(&only("DEV_MODE", "yes"), host).is_err());
    }
}
