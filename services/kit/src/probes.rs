//! The endpoints every process answers the same way: `GET /ping` as the original stack did,
//! and liveness and readiness probes for orchestrators and the gateway's health check.

use std::future::Future;

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::problem::Problem;

/// `GET /ping` -> `{"response":"pong"}`.
pub fn ping<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/ping", get(|| async { Json(json!({"response": "pong"})) }))
}

/// `GET /health/live` (the process answers) and `GET /health/ready` (its dependencies answer
/// too: `ready` says which one does not, and the probe then answers 503).
pub fn health<S, F, Fut>(ready: F) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "up"})) }),
        )
        .route(
            "/health/ready",
            get(move || async move {
                match ready().await {
                    Ok(()) => Json(json!({"status": "ready"})).into_response(),
                    Err(reason) => Problem::unavailable(reason).into_response(),
                }
            }),
        )
}

/// Unknown paths and methods as problem details.
pub(crate) async fn not_found() -> Response {
    Problem::not_found("no resource at this path").into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    Problem::method_not_allowed().into_response()
}
