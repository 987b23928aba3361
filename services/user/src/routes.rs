//! The HTTP API of the user service.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use service_kit::{FieldError, JsonObject, Problem};

use crate::domain::NewUser;
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
pub async fn create_user(
    State(state): State<AppState>,
    body: JsonObject,
) -> Result<Response, Problem> {
    let user = state.store.create(&NewUser::from_json(&body)?).await?;
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
