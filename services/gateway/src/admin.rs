//! `/admin/faults`: the stack's fault set (`contract::faults`), read and changed at run time by
//! a caller whose token has the admin role. Every process and replica reads the set from Redis
//! within a second. With `FAULTS_ENABLED=false` the routes do not exist.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use contract::faults::{Fault, FaultRequest};
use service_kit::faults::{Faults, FaultsError};
use service_kit::{FieldError, Problem};

fn unavailable(error: FaultsError) -> Problem {
    Problem::unavailable(error.to_string()).caused_by(error)
}

/// The faults in force.
#[utoipa::path(
    get,
    path = "/admin/faults",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The faults in force, in every process", body = Vec<Fault>),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no admin role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis, where the set is kept, is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_faults(State(faults): State<Faults>) -> Result<Json<Vec<Fault>>, Problem> {
    faults.list().await.map(Json).map_err(unavailable)
}

/// Puts the faults of the body in force, in place of the set.
#[utoipa::path(
    put,
    path = "/admin/faults",
    tag = "admin",
    security(("bearer" = [])),
    request_body(content = Vec<FaultRequest>, description = "The whole set: `[]` clears it"),
    responses(
        (status = 200, description = "The faults now in force", body = Vec<Fault>),
        (status = 400, description = "Not a JSON array of faults, or a fault breaks a rule (each field named by `#/<index>/<field>`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no admin role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis, where the set is kept, is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replace_faults(
    State(faults): State<Faults>,
    body: Bytes,
) -> Result<Json<Vec<Fault>>, Problem> {
    let requests: Vec<FaultRequest> = serde_json::from_slice(&body)
        .map_err(|error| Problem::malformed(format!("expected a JSON array of faults: {error}")))?;
    let now = Utc::now();
    let mut parsed = Vec::with_capacity(requests.len());
    let mut invalid = Vec::new();
    for (index, request) in requests.into_iter().enumerate() {
        match request.parse(now) {
            Ok(fault) => parsed.push(fault),
            Err(fields) => {
                invalid.extend(fields.into_iter().map(|field| {
                    FieldError::new(&format!("{index}/{}", field.field), field.detail)
                }))
            }
        }
    }
    if !invalid.is_empty() {
        return Err(Problem::validation(invalid));
    }
    faults.replace(parsed.clone()).await.map_err(unavailable)?;
    tracing::warn!(faults = parsed.len(), "the fault set was replaced");
    Ok(Json(parsed))
}

/// Switches every fault off.
#[utoipa::path(
    delete,
    path = "/admin/faults",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "No fault is in force any more"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no admin role", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis, where the set is kept, is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_faults(State(faults): State<Faults>) -> Result<Response, Problem> {
    faults.replace(Vec::new()).await.map_err(unavailable)?;
    tracing::warn!("every fault was switched off");
    Ok(StatusCode::NO_CONTENT.into_response())
}
