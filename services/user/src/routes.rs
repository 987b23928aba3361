//! The HTTP API of the user service.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use contract::users::{EmailAddress, NewUser, NewUserFields, User};
use serde::Deserialize;
use service_kit::params::whole_number;
use service_kit::{JsonObject, Problem};
use uuid::Uuid;

use crate::state::AppState;
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
            error @ StoreError::Unavailable(_) => {
                Problem::unavailable("the user database is unavailable; try again shortly")
                    .caused_by(error)
            }
            error @ StoreError::Other(_) => Problem::internal().caused_by(error),
        }
    }
}

/// `POST /user` -> 201 with the stored user and its `Location`.
#[utoipa::path(
    post,
    path = "/user",
    tag = "users",
    params(("idempotency-key" = Option<String>, Header, description = "Your name for this creation, 1 to 255 visible ASCII characters: sent again, the request answers with the user it created instead of a 409 (for a day after)")),
    request_body(content = NewUserFields, content_type = "application/json"),
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
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<User>), Problem> {
    let new_user = NewUser::from_json(&body.0).map_err(Problem::invalid_fields)?;
    // The subject is the gateway's, which authenticates the caller; none on direct calls.
    let subject = service_kit::headers::enduser(&headers).unwrap_or_default();
    let event_id =
        service_kit::headers::creation_event_id(&headers, subject)?.unwrap_or_else(Uuid::new_v4);
    let user = state.store.create(&new_user, event_id).await?;
    tracing::info!(user.id = user.id, "user created");
    let location = format!("/user/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    ))
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
) -> Result<Json<User>, Problem> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::malformed("the user id must be a positive whole number"))?;
    match state.store.get(id).await? {
        Some(user) => Ok(Json(user)),
        None => Err(Problem::not_found(format!("there is no user {id}"))),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    before: Option<String>,
    email: Option<String>,
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
        (status = 400, description = "A bad limit, before or email", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<(HeaderMap, Json<Vec<User>>), Problem> {
    let Query(params) = params.map_err(|rejection| Problem::malformed(rejection.body_text()))?;
    let mut headers = HeaderMap::new();
    // `?email=` looks one user up (whatever the case): where an asynchronous creation lands.
    if let Some(email) = params.email.as_deref() {
        // No user has an email that breaks the rules (nor could Postgres take a NUL in it).
        let email = EmailAddress::parse(email).map_err(|detail| {
            Problem::validation(vec![service_kit::FieldError::new("email", detail)])
        })?;
        let users = state
            .store
            .find_by_email(email.as_str())
            .await?
            .into_iter()
            .collect();
        return Ok((headers, Json(users)));
    }
    let (limit, before) = match (
        whole_number("limit", params.limit.as_deref(), 1..=MAX_PAGE_SIZE),
        whole_number("before", params.before.as_deref(), 1..=i64::MAX),
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
    if let Some(next) = next.and_then(|link| link.parse().ok()) {
        headers.insert(header::LINK, next);
    }
    Ok((headers, Json(users)))
}
