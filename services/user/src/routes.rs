//! The HTTP API of the user service.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use messaging::users::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey};
use serde::Deserialize;
use service_kit::{FieldError, JsonObject, Problem};
use uuid::Uuid;

use crate::domain::{NewUser, User};
use crate::startup::AppState;
use crate::store::StoreError;

/// Page size of `GET /users` when none is asked for, and the largest one allowed.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateEmail => {
                Problem::conflict("a user with this email exists already")
            }
            StoreError::EventIdReused => Problem::idempotency_key_reused(
                "this Idempotency-Key was sent before with another name or email",
            ),
            StoreError::Unavailable(error) => {
                tracing::warn!(%error, "the database is unavailable");
                Problem::unavailable("the user database is unavailable; try again shortly")
            }
            StoreError::Other(error) => {
                tracing::error!(%error, "database error");
                Problem::internal()
            }
        }
    }
}

/// `POST /user` -> 201 with the stored user and its `Location`.
#[utoipa::path(
    post,
    path = "/user",
    tag = "users",
    params(("idempotency-key" = Option<String>, Header, description = "Your name for this creation, 1 to 255 visible ASCII characters: sent again, the request answers with the user it created instead of a 409 (for a day after)")),
    request_body(content = crate::domain::NewUserBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The user was created (or, for an `Idempotency-Key` sent before, had been)", body = User,
            headers(("location" = String, description = "Where the user can be read"))),
        (status = 400, description = "The body is not JSON, not an object, or has invalid fields; or the `Idempotency-Key` is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A user with this email exists already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` was sent before with another name or email", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, Problem> {
    let new_user = NewUser::from_json(&body)?;
    let event_id = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => Uuid::new_v4(),
        Some(value) => {
            let key = IdempotencyKey::parse(value.as_bytes()).map_err(Problem::malformed)?;
            // Set by the gateway, which authenticates the caller; absent on direct calls.
            let subject = headers
                .get(telemetry::http_server::ENDUSER_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            key.event_id(subject)
        }
    };
    let user = state.store.create(&new_user, event_id).await?;
    tracing::info!(user.id = user.id, "user created");
    let location = format!("/user/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// `GET /user/{id}` -> 200 or 404.
#[utoipa::path(
    get,
    path = "/user/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "The id is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::malformed("the user id must be a positive whole number"))?;
    match state.store.get(id).await? {
        Some(user) => Ok(Json(user).into_response()),
        None => Err(Problem::not_found(format!("there is no user {id}"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    before: Option<String>,
    email: Option<String>,
}

fn positive(name: &str, raw: Option<&str>, max: i64) -> Result<Option<i64>, FieldError> {
    match raw {
        None => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|value| (1..=max).contains(value))
            .map(Some)
            .ok_or_else(|| {
                FieldError::new(name, format!("must be a whole number from 1 to {max}"))
            }),
    }
}

/// `GET /users?limit=20&before=<id>` -> users newest first, with a `Link: rel="next"` header
/// when there may be more.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("before" = Option<i64>, Query, description = "Only users with a smaller id: the next page"),
        ("email" = Option<String>, Query, description = "Only the user with this email, whatever its case"),
    ),
    responses(
        (status = 200, description = "Users, newest first", body = Vec<User>,
            headers(("link" = String, description = "rel=\"next\": the next page, when the page is full"))),
        (status = 400, description = "A bad limit or before", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(params) = params.map_err(|rejection| Problem::malformed(rejection.body_text()))?;
    // `?email=` looks one user up (whatever the case): where an asynchronous creation lands.
    if let Some(email) = params.email.as_deref() {
        let users: Vec<_> = state
            .store
            .find_by_email(email)
            .await?
            .into_iter()
            .collect();
        return Ok(Json(users).into_response());
    }
    let (limit, before) = match (
        positive("limit", params.limit.as_deref(), MAX_PAGE_SIZE),
        positive("before", params.before.as_deref(), i64::MAX),
    ) {
        (Ok(limit), Ok(before)) => (limit.unwrap_or(DEFAULT_PAGE_SIZE), before),
        (limit, before) => {
            return Err(Problem::validation(
                [limit.err(), before.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let users = state.store.list(limit, before).await?;
    let next = (users.len() as i64 == limit)
        .then(|| users.last().map(|last| last.id))
        .flatten()
        .map(|last| format!("</users?limit={limit}&before={last}>; rel=\"next\""));
    let mut response = Json(users).into_response();
    if let Some(next) = next.and_then(|link| link.parse().ok()) {
        response.headers_mut().insert(header::LINK, next);
    }
    Ok(response)
}
