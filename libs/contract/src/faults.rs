//! Faults switched on at run time, to watch how a failure shows in the traces, metrics, logs
//! and dashboards: what a fault is, as the gateway's `/admin/faults` takes it and every process
//! reads it, and the rules a fault must follow.
//!
//! A fault has a kind, the processes it touches, a probability and an expiry, so that a
//! forgotten fault ends by itself. Each kind says where it strikes:
//!
//! | kind | where | what happens |
//! | --- | --- | --- |
//! | `latency` | the `service`'s routes (or its `route`) | the request waits `delay_ms` first |
//! | `error` | the `service`'s routes (or its `route`) | the request is answered `status` |
//! | `database` | user, user-queue | a database call fails as if Postgres were gone |
//! | `webhook_error` | slack, slack-queue | a Slack call fails as if Slack answered 503 |
//! | `webhook_latency` | slack, slack-queue | a Slack call waits `delay_ms` first |
//! | `consumer_error` | slack-queue | handling a delivery fails: it is retried, then dead-lettered |
//! | `consumer_latency` | slack-queue | handling a delivery waits `delay_ms` first |
//! | `rpc_error` | user | an RPC call is answered "unavailable" |
//! | `rpc_timeout` | user | an RPC call is never answered |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::InvalidField;

/// The processes with an API, whose routes `latency` and `error` faults strike.
pub const ROUTED_SERVICES: [&str; 3] = ["gateway", "user", "slack"];
/// How long a fault lasts unless it says otherwise, and the longest it may.
pub const DEFAULT_TTL_SECONDS: u64 = 300;
pub const MAX_TTL_SECONDS: u64 = 3600;
/// The longest delay a fault may add.
pub const MAX_DELAY_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Error,
    Database,
    WebhookError,
    WebhookLatency,
    ConsumerError,
    ConsumerLatency,
    RpcError,
    RpcTimeout,
}

impl FaultKind {
    /// Its name on the wire, in metrics (`kind`) and on spans (`fault.injected`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Error => "error",
            Self::Database => "database",
            Self::WebhookError => "webhook_error",
            Self::WebhookLatency => "webhook_latency",
            Self::ConsumerError => "consumer_error",
            Self::ConsumerLatency => "consumer_latency",
            Self::RpcError => "rpc_error",
            Self::RpcTimeout => "rpc_timeout",
        }
    }

    /// The processes a fault of this kind strikes in, when the kind decides it; `None` when the
    /// fault names its `service`.
    pub fn services(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Latency | Self::Error => None,
            Self::Database => Some(&["user", "user-queue"]),
            Self::WebhookError | Self::WebhookLatency => Some(&["slack", "slack-queue"]),
            Self::ConsumerError | Self::ConsumerLatency => Some(&["slack-queue"]),
            Self::RpcError | Self::RpcTimeout => Some(&["user"]),
        }
    }

    /// Every kind, in the order a client lists them.
    pub const ALL: [Self; 9] = [
        Self::Latency,
        Self::Error,
        Self::Database,
        Self::WebhookError,
        Self::WebhookLatency,
        Self::ConsumerError,
        Self::ConsumerLatency,
        Self::RpcError,
        Self::RpcTimeout,
    ];

    /// What it does, in words.
    pub fn description(self) -> &'static str {
        match self {
            Self::Latency => "Latency on a service's routes",
            Self::Error => "Errors on a service's routes",
            Self::Database => "user: database calls fail",
            Self::WebhookError => "slack: Slack calls fail",
            Self::WebhookLatency => "slack: Slack calls are slow",
            Self::ConsumerError => "slack-queue: handling fails",
            Self::ConsumerLatency => "slack-queue: handling is slow",
            Self::RpcError => "user: RPC answers fail",
            Self::RpcTimeout => "user: RPC calls get no answer",
        }
    }

    /// The fields of a [`FaultRequest`] it takes besides `probability` and `ttl_seconds`.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Latency => &["service", "route", "delay_ms"],
            Self::Error => &["service", "route", "status"],
            Self::WebhookLatency | Self::ConsumerLatency => &["delay_ms"],
            _ => &[],
        }
    }

    /// How a client may ask for it: its kind, what it does, its fields and the services it
    /// may name or strikes in.
    pub fn info(self) -> FaultKindInfo {
        FaultKindInfo {
            kind: self,
            description: self.description(),
            fields: self.fields().to_vec(),
            services: self.services().unwrap_or(&ROUTED_SERVICES).to_vec(),
        }
    }

    fn delays(self) -> bool {
        matches!(
            self,
            Self::Latency | Self::WebhookLatency | Self::ConsumerLatency
        )
    }
}

/// How a client may ask for a kind of fault (the page's fault panel builds its form from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FaultKindInfo {
    pub kind: FaultKind,
    #[schema(example = "Latency on a service's routes")]
    pub description: &'static str,
    /// The request's fields it takes besides `probability` and `ttl_seconds`.
    #[schema(example = json!(["service", "route", "delay_ms"]))]
    pub fields: Vec<&'static str>,
    /// The services it may name (`latency`, `error`) or strikes in (the others).
    #[schema(example = json!(["gateway", "user", "slack"]))]
    pub services: Vec<&'static str>,
}

/// A fault as it is asked for: one item of the body of `PUT /admin/faults`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub kind: FaultKind,
    /// For `latency` and `error`: the service whose routes it strikes (required: gateway, user
    /// or slack). Other kinds
    /// decide it; if given, it must be one of theirs.
    #[schema(example = "user")]
    pub service: Option<String>,
    /// For `latency` and `error`: one route, as its spans name it (`POST /user`); all the
    /// service's routes when absent.
    #[schema(example = "POST /user")]
    pub route: Option<String>,
    /// For the latency kinds (required): milliseconds added, 1 to 30,000.
    #[schema(example = 500)]
    pub delay_ms: Option<u64>,
    /// For `error`: the status answered, 400 to 599 (500 by default).
    #[schema(example = 503)]
    pub status: Option<u16>,
    /// The share of the calls struck, above 0 and at most 1 (1 by default).
    #[schema(example = 0.5)]
    pub probability: Option<f64>,
    /// How long the fault lasts, 1 to 3,600 s (300 by default).
    #[schema(example = 300)]
    pub ttl_seconds: Option<u64>,
}

/// A fault in force: what `GET /admin/faults` lists and every process reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fault {
    pub kind: FaultKind,
    /// The processes it strikes in.
    pub services: Vec<String>,
    pub route: Option<String>,
    pub delay_ms: u64,
    pub status: u16,
    pub probability: f64,
    pub expires_at: DateTime<Utc>,
}

impl Fault {
    /// Whether it strikes in `service` (on `route`, for a route's fault) at `now`.
    pub fn strikes(&self, service: &str, route: Option<&str>, now: DateTime<Utc>) -> bool {
        self.expires_at > now
            && self.services.iter().any(|name| name == service)
            && match (&self.route, route) {
                (None, _) => true,
                (Some(wanted), Some(route)) => wanted == route,
                (Some(_), None) => false,
            }
    }
}

impl FaultRequest {
    /// The fault in force from `now`, or every field that breaks the rules.
    pub fn parse(self, now: DateTime<Utc>) -> Result<Fault, Vec<InvalidField>> {
        let mut invalid = Vec::new();
        let services: Vec<String> = match (self.kind.services(), &self.service) {
            (None, None) => {
                invalid.push(InvalidField::new("service", "is required for this kind"));
                Vec::new()
            }
            (None, Some(service)) if !ROUTED_SERVICES.contains(&service.as_str()) => {
                invalid.push(InvalidField::new(
                    "service",
                    format!("must be one of {}", ROUTED_SERVICES.join(", ")),
                ));
                Vec::new()
            }
            (None, Some(service)) => vec![service.clone()],
            (Some(fixed), Some(service)) if !fixed.contains(&service.as_str()) => {
                invalid.push(InvalidField::new(
                    "service",
                    format!("this kind strikes in {} only", fixed.join(", ")),
                ));
                Vec::new()
            }
            // One of the kind's processes only.
            (Some(_), Some(service)) => vec![service.clone()],
            (Some(fixed), None) => fixed.iter().map(|&service| service.to_owned()).collect(),
        };
        let route = match (&self.route, self.kind) {
            (None, _) => None,
            (Some(route), FaultKind::Latency | FaultKind::Error) => {
                let valid = route.split_once(' ').is_some_and(|(method, path)| {
                    !method.is_empty()
                        && method.chars().all(|c| c.is_ascii_uppercase())
                        && path.starts_with('/')
                });
                if !valid {
                    invalid.push(InvalidField::new(
                        "route",
                        "must be a method and a route template, as `POST /user`",
                    ));
                }
                Some(route.clone())
            }
            (Some(_), _) => {
                invalid.push(InvalidField::new(
                    "route",
                    "only a latency or error fault has one",
                ));
                None
            }
        };
        let delay_ms = match (self.delay_ms, self.kind.delays()) {
            (Some(delay), true) if (1..=MAX_DELAY_MS).contains(&delay) => delay,
            (Some(_), true) => {
                invalid.push(InvalidField::new(
                    "delay_ms",
                    format!("must be 1 to {MAX_DELAY_MS}"),
                ));
                0
            }
            (None, true) => {
                invalid.push(InvalidField::new("delay_ms", "is required for this kind"));
                0
            }
            (Some(_), false) => {
                invalid.push(InvalidField::new("delay_ms", "only a latency kind has one"));
                0
            }
            (None, false) => 0,
        };
        let status = match (self.status, self.kind) {
            (None, FaultKind::Error) => 500,
            (Some(status), FaultKind::Error) if (400..=599).contains(&status) => status,
            (Some(_), FaultKind::Error) => {
                invalid.push(InvalidField::new("status", "must be 400 to 599"));
                0
            }
            (Some(_), _) => {
                invalid.push(InvalidField::new("status", "only an error fault has one"));
                0
            }
            (None, _) => 0,
        };
        let probability = self.probability.unwrap_or(1.0);
        if !(probability > 0.0 && probability <= 1.0) {
            invalid.push(InvalidField::new(
                "probability",
                "must be above 0 and at most 1",
            ));
        }
        let ttl = self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            invalid.push(InvalidField::new(
                "ttl_seconds",
                format!("must be 1 to {MAX_TTL_SECONDS}"),
            ));
        }
        if !invalid.is_empty() {
            return Err(invalid);
        }
        Ok(Fault {
            kind: self.kind,
            services,
            route,
            delay_ms,
            status,
            probability,
            expires_at: now + chrono::Duration::seconds(ttl as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> FaultRequest {
        serde_json::from_value(json).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_route_fault_names_its_service_and_a_kind_fault_gets_its_own() {
        let fault = request(serde_json::json!({
            "kind": "latency", "service": "user", "route": "POST /user", "delay_ms": 200,
            "probability": 0.5, "ttl_seconds": 60
        }))
        .parse(now())
        .unwrap();
        assert_eq!(fault.services, ["user"]);
        assert_eq!(fault.expires_at, now() + chrono::Duration::seconds(60));
        assert!(fault.strikes("user", Some("POST /user"), now()));
        assert!(!fault.strikes("user", Some("GET /users"), now()));
        assert!(!fault.strikes("gateway", Some("POST /user"), now()));
        assert!(!fault.strikes("user", Some("POST /user"), fault.expires_at));

        let database = request(serde_json::json!({"kind": "database"}))
            .parse(now())
            .unwrap();
        assert_eq!(database.services, ["user", "user-queue"]);
        assert_eq!(database.probability, 1.0);
        assert_eq!(
            database.expires_at,
            now() + chrono::Duration::seconds(DEFAULT_TTL_SECONDS as i64)
        );
        let error = request(serde_json::json!({"kind": "error", "service": "gateway"}))
            .parse(now())
            .unwrap();
        assert_eq!(error.status, 500);
        assert!(error.strikes("gateway", Some("GET /users"), now()));
    }

    #[test]
    fn every_broken_rule_is_named() {
        let invalid = request(serde_json::json!({
            "kind": "latency", "service": "nobody", "route": "post user", "status": 503,
            "probability": 0, "ttl_seconds": 86400
        }))
        .parse(now())
        .unwrap_err();
        let fields: Vec<&str> = invalid.iter().map(|field| field.field).collect();
        assert_eq!(
            fields,
            [
                "service",
                "route",
                "delay_ms",
                "status",
                "probability",
                "ttl_seconds"
            ]
        );
        let invalid = request(serde_json::json!({
            "kind": "rpc_timeout", "service": "slack", "delay_ms": 5
        }))
        .parse(now())
        .unwrap_err();
        let fields: Vec<&str> = invalid.iter().map(|field| field.field).collect();
        assert_eq!(fields, ["service", "delay_ms"]);
        assert!(
            serde_json::from_value::<FaultRequest>(serde_json::json!({"kind": "meteor"})).is_err()
        );
    }
}
