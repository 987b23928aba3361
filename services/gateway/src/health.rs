//! `GET /health` in the original's shape: one key per service with `time` (ms) and `response`
//! (`"pong"`), or `error` instead of `response` for a service that failed. Every service is
//! checked at once, each within its own timeout, so a dead or slow one reports its error while
//! the others still report. 200 when all answer, 503 otherwise.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::configuration::Upstream;

async fn check(
    client: &reqwest_middleware::ClientWithMiddleware,
    upstream: &Upstream,
    timeout: Duration,
) -> (bool, Value) {
    let started = Instant::now();
    let outcome = async {
        let url = upstream
            .url
            .join("/ping")
            .map_err(|error| error.to_string())?;
        let response =
            client
                .get(url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|error| match &error {
                    reqwest_middleware::Error::Reqwest(inner) if inner.is_timeout() => {
                        format!("no answer within {} ms", timeout.as_millis())
                    }
                    reqwest_middleware::Error::Reqwest(inner) if inner.is_connect() => {
                        "connection refused".to_owned()
                    }
                    _ => "request failed".to_owned(),
                })?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|_| "answered something that is not JSON".to_owned())?;
        match body.get("response").and_then(Value::as_str) {
            Some(answer) => Ok(answer.to_owned()),
            None => Err("answered without a response".to_owned()),
        }
    }
    .await;
    let time = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(response) => (true, json!({"time": time, "response": response})),
        Err(error) => (false, json!({"time": time, "error": error})),
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "probes",
    responses(
        (status = 200, description = "Every service answered", body = std::collections::BTreeMap<String, crate::docs::ServiceHealth>),
        (status = 503, description = "At least one service did not answer", body = std::collections::BTreeMap<String, crate::docs::ServiceHealth>),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let checks = join_all(
        state
            .health_targets
            .iter()
            .map(|upstream| check(state.proxy.client(), upstream, state.health_timeout)),
    )
    .await;
    let all_up = checks.iter().all(|(up, _)| *up);
    let report: Map<String, Value> = state
        .health_targets
        .iter()
        .zip(checks)
        .map(|(upstream, (_, report))| (upstream.name.to_owned(), report))
        .collect();
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(report))).into_response()
}
