//! Reading settings from the environment: one helper, so every service reports a bad value the
//! same way, naming its variable.

use std::net::IpAddr;
use std::str::FromStr;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Where settings come from: the process environment, or a map in tests.
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
        reason: &'static str,
    ) -> Result<T, SettingsError> {
        match self.text(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| SettingsError {
                variable: name,
                value,
                reason,
            }),
        }
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

impl<F: Fn(&str) -> Option<String>> Lookup for F {
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
