//! The endpoints every process answers the same way: `GET /ping` as the original stack did,
//! and liveness and readiness probes for orchestrators and the gateway's health check.

use std::future::Future;

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::problem::Problem;

/// The answer of `GET /ping`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Pong {
    #[schema(example = "pong")]
    pub response: &'static str,
}

/// Answers `pong`, as the original stack did.
#[utoipa::path(get, path = "/ping", tag = "probes", responses((status = 200, body = Pong)))]
pub async fn pong() -> Json<Pong> {
    Json(Pong { response: "pong" })
}

/// `GET /ping` -> `{"response":"pong"}`.
pub fn ping<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ping", get(pong))
}

/// Whether the process is up, or ready.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "probes", responses((status = 200, body = Status)))]
pub async fn live() -> Json<Status> {
    Json(Status { status: "up" })
}

/// Readiness: the process and its dependencies answer.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "probes",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "a dependency does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub fn readiness(outcome: Result<(), String>) -> Response {
    match outcome {
        Ok(()) => Json(Status { status: "ready" }).into_response(),
        Err(reason) => Problem::unavailable(reason).into_response(),
    }
}

/// The probes' part of an OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(pong, live, readiness),
    components(schemas(Pong, Status, Problem, crate::problem::FieldError))
)]
pub struct ProbesDoc;

/// Whether the process has been asked to stop: from then on it reports not ready, so that the
/// balancers in front of it stop sending it requests while it still serves and then drains.
#[derive(Debug, Clone, Default)]
pub struct Stopping(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stopping {
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `GET /health/live` (the process answers) and `GET /health/ready` (it is not stopping and
/// its dependencies answer: `ready` says which one does not, and the probe then answers 503).
pub fn health<S, F, Fut>(stopping: Stopping, ready: F) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    Router::new().route("/health/live", get(live)).route(
        "/health/ready",
        get(move || async move {
            if stopping.is_raised() {
                return readiness(Err("stopping".to_owned()));
            }
            readiness(ready().await)
        }),
    )
}

/// Whether a consumer is consuming, for readiness.
pub type Consuming = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// `/health/live` and `/health/ready` for a process that needs `dependency` (answering `check`)
/// and, when it is a consumer, to be consuming.
fn dependency_health<S, F, Fut, E>(
    dependency: &'static str,
    check: F,
    consuming: Option<Consuming>,
    stopping: Stopping,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    health(stopping, move || {
        let (check, consuming) = (check.clone(), consuming.clone());
        async move {
            if let Some(consuming) = consuming
                && !consuming()
            {
                return Err("rabbitmq: not consuming".to_owned());
            }
            check_dependency(dependency, check()).await
        }
    })
}

/// `/health/live`, `/health/ready` (the process is not stopping, its one `dependency` answers
/// `check`, and its consumer consumes when it has one) and `/metrics`: what every process serves beside its API.
/// They stay out of the request telemetry: probes and scrapes are not traffic, and would flood
/// the trace store.
pub fn operational<F, Fut, E>(
    dependency: &'static str,
    check: F,
    consumer: Option<Consuming>,
    metrics: &telemetry::Metrics,
    stopping: Stopping,
) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    dependency_health(dependency, check, consumer, stopping).merge(metrics.router())
}

/// How long a readiness check waits for a dependency.
pub const DEPENDENCY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks the dependency `name` for the readiness probe, within [`DEPENDENCY_TIMEOUT`]; the
/// failure names it.
pub async fn check_dependency<E: std::fmt::Display>(
    name: &str,
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(DEPENDENCY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("{name}: {error}")),
        Err(_) => Err(format!(
            "{name}: no answer within {} s",
            DEPENDENCY_TIMEOUT.as_secs()
        )),
    }
}

/// Unknown paths and methods as problem details.
pub(crate) async fn not_found() -> Response {
    Problem::not_found("no resource at this path").into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    Problem::method_not_allowed().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn ready(router: &Router) -> StatusCode {
        let request = Request::get("/health/ready").body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_stopping_process_is_alive_but_not_ready() {
        let stopping = Stopping::default();
        let router: Router = health(stopping.clone(), || async { Ok(()) });
        assert_eq!(ready(&router).await, StatusCode::OK);
        stopping.raise();
        assert_eq!(ready(&router).await, StatusCode::SERVICE_UNAVAILABLE);
        let live = Request::get("/health/live").body(Body::empty()).unwrap();
        assert_eq!(router.oneshot(live).await.unwrap().status(), StatusCode::OK);
    }
}
