//! `GET /health` in the original's shape: one key per service with `time` (ms) and `response`
//! (`"pong"`), or `error` instead of `response` for a service that failed. Every service is
//! checked at once, each within its own timeout, so a dead or slow one reports its error while
//! the others still report. 200 when all answer, 503 otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::future::join_all;
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};
use telemetry::http_client::NoAnswer;

use crate::configuration::Upstream;
use crate::state::AppState;

/// One service's answer in `/health`: `response` when it answered, `error` when not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceHealth {
    /// Milliseconds the check took.
    #[schema(example = 3)]
    pub time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "pong")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "connection refused")]
    pub error: Option<String>,
}

/// What a process answers on `/ping`.
#[derive(Deserialize)]
struct Pong {
    response: String,
}

/// Asks `upstream`'s `/ping`: its answer, or why there is none.
async fn ping(
    client: &ClientWithMiddleware,
    upstream: &Upstream,
    timeout: Duration,
) -> Result<String, String> {
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
            .map_err(|error| match NoAnswer::of(&error) {
                NoAnswer::Timeout => format!("no answer within {} ms", timeout.as_millis()),
                NoAnswer::Connect => "connection refused".to_owned(),
                NoAnswer::Tls(reason) => format!("TLS handshake failed ({reason})"),
                NoAnswer::Other => "request failed".to_owned(),
            })?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|_| "answered something that is not JSON".to_owned())?;
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Err(_) => Err("answered something that is not JSON".to_owned()),
        Ok(body) => serde_json::from_value::<Pong>(body)
            .map(|pong| pong.response)
            .map_err(|_| "answered without a response".to_owned()),
    }
}

async fn check(
    client: &ClientWithMiddleware,
    upstream: &Upstream,
    timeout: Duration,
) -> ServiceHealth {
    let started = Instant::now();
    let outcome = ping(client, upstream, timeout).await;
    let time = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(response) => ServiceHealth {
            time,
            response: Some(response),
            error: None,
        },
        Err(error) => ServiceHealth {
            time,
            response: None,
            error: Some(error),
        },
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "probes",
    responses(
        (status = 200, description = "Every service answered", body = BTreeMap<String, ServiceHealth>),
        (status = 503, description = "At least one service did not answer", body = BTreeMap<String, ServiceHealth>),
    )
)]
pub async fn health(
    State(state): State<AppState>,
) -> (StatusCode, Json<BTreeMap<&'static str, ServiceHealth>>) {
    let checks = join_all(
        state
            .health_targets
            .iter()
            .map(|upstream| check(state.proxy.client(), upstream, state.health_timeout)),
    )
    .await;
    let all_up = checks.iter().all(|check| check.error.is_none());
    let report = state
        .health_targets
        .iter()
        .map(|upstream| upstream.name)
        .zip(checks)
        .collect();
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
