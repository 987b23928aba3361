//! The faults switched on at run time ([`contract::faults`]), as every process sees them: the
//! stack's fault set lives in Redis, shared by every process and replica; each process reads it
//! every second into memory, so asking whether a fault strikes costs a read of that snapshot
//! and nothing measurable. The gateway changes the set (`/admin/faults`). With
//! `FAULTS_ENABLED=false` a process reads nothing and nothing ever strikes.
//!
//! Where a fault strikes, [`Faults::strike`] marks the current span and counts it
//! (`telemetry::faults`); [`strike_routes`] is the middleware for the `latency` and `error`
//! faults of a service's routes.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use contract::faults::{Fault, FaultKind};
use redis::AsyncCommands;
use settings::{Lookup, SettingsError};

use crate::problem::Problem;

/// How often a process reads the fault set.
const REFRESH: Duration = Duration::from_secs(1);

/// `FAULTS_ENABLED` (default true), `REDIS_URL` and `FAULTS_KEY`: whether faults can be
/// switched on, and where the set is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSettings {
    pub enabled: bool,
    pub redis_url: String,
    /// The Redis key of the set (`microservice-stack:faults`): one per stack.
    pub key: String,
}

impl FaultSettings {
    /// Faults off: no Redis read, no `/admin/faults`.
    pub fn off() -> Self {
        Self::from_lookup(&|_: &str| None, false).expect("the defaults are valid")
    }

    /// `FAULTS_ENABLED` (by default on in development mode only), `REDIS_URL`, `FAULTS_KEY`.
    pub fn from_lookup(lookup: &impl Lookup, development: bool) -> Result<Self, SettingsError> {
        Ok(Self {
            enabled: lookup.flag("FAULTS_ENABLED", development)?,
            redis_url: settings::redis_url(lookup)?,
            key: lookup
                .text("FAULTS_KEY")?
                .unwrap_or_else(|| "microservice-stack:faults".to_owned()),
        })
    }
}

/// Why the fault set could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("faults are switched off (FAULTS_ENABLED=false)")]
    Disabled,
    #[error("the fault set in Redis is unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One process's view of the fault set; cheap to clone.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

struct Shared {
    service: &'static str,
    current: RwLock<Arc<Vec<Fault>>>,
    store: Option<Store>,
}

struct Store {
    connection: redis::aio::ConnectionManager,
    key: String,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("service", &self.shared.service)
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Faults for `service` as `settings` say; while enabled, a task of the current runtime
    /// keeps the snapshot fresh for as long as a clone of it lives.
    pub fn start(settings: &FaultSettings, service: &'static str) -> Self {
        let store = settings
            .enabled
            .then(|| crate::redis_connection::connect_lazily(&settings.redis_url))
            .transpose()
            .inspect_err(|error| {
                tracing::error!(%error, "REDIS_URL is not usable: faults stay off");
            })
            .ok()
            .flatten()
            .map(|connection| Store {
                connection,
                key: settings.key.clone(),
            });
        let watching = store.is_some();
        let faults = Self {
            shared: Arc::new(Shared {
                service,
                current: RwLock::new(Arc::default()),
                store,
            }),
        };
        if watching {
            telemetry::spawn(refresh(Arc::downgrade(&faults.shared)));
        }
        faults
    }

    /// Faults that never strike.
    pub fn off(service: &'static str) -> Self {
        Self {
            shared: Arc::new(Shared {
                service,
                current: RwLock::new(Arc::default()),
                store: None,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.shared.store.is_some()
    }

    /// The fault of `kind` that strikes this call (on `route`, for a route's fault), if one is
    /// in force here and its probability says so; it is then marked on the current span and
    /// counted.
    pub fn strike(&self, kind: FaultKind, route: Option<&str>) -> Option<Fault> {
        let current = self.current();
        if current.is_empty() {
            return None;
        }
        let now = Utc::now();
        let fault = current
            .iter()
            .find(|fault| fault.kind == kind && fault.strikes(self.shared.service, route, now))?;
        if fastrand::f64() >= fault.probability {
            return None;
        }
        telemetry::faults::injected(kind.as_str());
        Some(fault.clone())
    }

    /// Waits out the delay of a latency fault of `kind`, if one strikes.
    pub async fn delay(&self, kind: FaultKind) {
        if let Some(fault) = self.strike(kind, None) {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
    }

    /// The faults in force, read from Redis now.
    pub async fn list(&self) -> Result<Vec<Fault>, FaultsError> {
        let store = self.shared.store.as_ref().ok_or(FaultsError::Disabled)?;
        let faults = read(store).await?;
        self.keep(faults.clone());
        Ok(faults)
    }

    /// Puts `faults` in force in place of the set, for every process.
    pub async fn replace(&self, faults: Vec<Fault>) -> Result<(), FaultsError> {
        let store = self.shared.store.as_ref().ok_or(FaultsError::Disabled)?;
        let mut connection = store.connection.clone();
        match faults.iter().map(|fault| fault.expires_at).max() {
            None => connection.del::<_, ()>(&store.key).await?,
            Some(last) => {
                // The key goes when the last fault does.
                let ttl = (last - Utc::now()).num_milliseconds().max(1) as u64;
                let json = serde_json::to_string(&faults).expect("faults serialize");
                connection
                    .pset_ex::<_, _, ()>(&store.key, json, ttl)
                    .await?;
            }
        }
        self.keep(faults);
        Ok(())
    }

    fn current(&self) -> Arc<Vec<Fault>> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    fn keep(&self, faults: Vec<Fault>) {
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(faults);
    }
}

/// The set in Redis, without the faults that expired.
async fn read(store: &Store) -> Result<Vec<Fault>, redis::RedisError> {
    let mut connection = store.connection.clone();
    let json: Option<String> = connection.get(&store.key).await?;
    let now = Utc::now();
    Ok(json
        .and_then(|json| serde_json::from_str::<Vec<Fault>>(&json).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|fault| fault.expires_at > now)
        .collect())
}

/// Reads the set every [`REFRESH`] while the faults live. An unreachable Redis keeps the last
/// snapshot (said once); expired faults drop out of it anyway.
async fn refresh(shared: Weak<Shared>) {
    let mut failing = false;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let faults = Faults { shared: strong };
        let store = faults
            .shared
            .store
            .as_ref()
            .expect("refreshed only with a store");
        match read(store).await {
            Ok(current) => {
                failing = false;
                faults.keep(current);
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot read the fault set; keeping the last one");
                }
                failing = true;
                let now = Utc::now();
                let unexpired = faults
                    .current()
                    .iter()
                    .filter(|fault| fault.expires_at > now)
                    .cloned()
                    .collect();
                faults.keep(unexpired);
            }
        }
        drop(faults);
        tokio::time::sleep(REFRESH).await;
    }
}

/// Middleware for a service's API routes: a `latency` fault on the route (or the service)
/// delays the request, an `error` fault answers it with its status.
pub async fn strike_routes(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    if faults.current().is_empty() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| format!("{} {}", request.method(), path.as_str()));
    if let Some(fault) = faults.strike(FaultKind::Latency, route.as_deref()) {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    if let Some(fault) = faults.strike(FaultKind::Error, route.as_deref()) {
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Problem::fault_injected(status).into_response();
    }
    next.run(request).await
}

/// Middleware for an HTTP client whose calls faults strike (slack's webhook): put after
/// `telemetry::http_client::TracingMiddleware`, so that the fault marks the call's CLIENT span.
/// A `latency_kind` fault delays the call; an `error_kind` fault answers it 503 without sending
/// it, as a failing server would.
#[derive(Debug, Clone)]
pub struct OutboundFaults {
    pub faults: Faults,
    pub latency_kind: FaultKind,
    pub error_kind: FaultKind,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for OutboundFaults {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if let Some(fault) = self.faults.strike(self.latency_kind, None) {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if self.faults.strike(self.error_kind, None).is_some() {
            let answer = http::Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body("fault injected")
                .expect("a static response");
            return Ok(reqwest::Response::from(answer));
        }
        next.run(request, extensions).await
    }
}
