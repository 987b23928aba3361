//! The public API's routes: most are routed to a service as they are; an asynchronous
//! `POST /user` becomes a `create_user` command for user-queue.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contract::commands::CreateUser;
use contract::messages::Message;
use contract::rpc::{EmailAvailability, EmailAvailableParams, codes, methods};
use contract::users::{EmailAddress, NewUser, NewUserFields, User};
use messaging::rpc::CallError;
use messaging::{Outgoing, SharedPublishError};
use serde::{Deserialize, Serialize};
use service_kit::{FieldError, JsonObject, Problem};
use uuid::Uuid;

use crate::auth::Subject;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/user/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The id is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "There is no such user", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The user service cannot be reached", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The user database is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The user service did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(State(state): State<AppState>, request: Request) -> Response {
    state.proxy.forward(&state.user, request).await
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("before" = Option<i64>, Query, description = "Only users with a smaller id: the next page"),
        ("email" = Option<String>, Query, description = "Only the user with this email"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Users, newest first; `Link: rel=\"next\"` when the page is full", body = Vec<User>),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A bad limit, before or email", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The user service cannot be reached", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The user database is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The user service did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(State(state): State<AppState>, request: Request) -> Response {
    state.proxy.forward(&state.user, request).await
}

#[utoipa::path(
    get,
    path = "/messages",
    tag = "messages",
    params(
        ("channel" = String, Query, description = "The channel, e.g. `#user` (`%23user` in a URL)"),
        ("limit" = Option<i64>, Query, description = "1 to 100 (default 10)"),
        ("offset" = Option<i64>, Query, description = "Messages to skip (default 0)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The channel's messages, newest first", body = Vec<Message>),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "No channel, or a bad limit or offset", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The slack service cannot be reached", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The message store is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The slack service did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_messages(State(state): State<AppState>, request: Request) -> Response {
    state.proxy.forward(&state.slack, request).await
}

#[derive(Debug, Deserialize)]
pub struct AvailabilityParams {
    email: Option<String>,
}

/// The problem for a call to the user service over RabbitMQ that got no result.
fn rpc_problem(error: CallError) -> Problem {
    let problem = match &error {
        CallError::Timeout(timeout) => Problem::gateway_timeout(format!(
            "the user service did not answer within {} ms",
            timeout.as_millis()
        )),
        CallError::Remote(remote) if remote.code == codes::UNAVAILABLE => {
            Problem::unavailable("the user database is unavailable; try again shortly")
        }
        CallError::Unavailable(_) | CallError::ConnectionLost => {
            Problem::unavailable("no user service takes calls right now; try again shortly")
        }
        CallError::Remote(_) | CallError::Malformed(_) => {
            Problem::bad_gateway("the user service could not answer the call")
        }
    };
    problem.caused_by(error)
}

/// `GET /users/availability?email=...`: whether an email is free, asked of the user service
/// over RabbitMQ (JSON-RPC `users.email_available`), by the rules of `POST /user`.
#[utoipa::path(
    get,
    path = "/users/availability",
    tag = "users",
    params(("email" = String, Query, description = "The email to check, as a user would enter it")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether a user may take this email (compared whatever its case)", body = EmailAvailability),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "No email, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The user service could not answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No user service takes calls, or its database is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The user service did not answer within RPC_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn email_availability(
    State(state): State<AppState>,
    params: Result<Query<AvailabilityParams>, QueryRejection>,
) -> Result<Json<EmailAvailability>, Problem> {
    let Query(params) = params.map_err(|rejection| Problem::malformed(rejection.body_text()))?;
    let email = match params.email.as_deref() {
        None => Err(FieldError::new("email", "is required")),
        Some(raw) => EmailAddress::parse(raw).map_err(|detail| FieldError::new("email", detail)),
    }
    .map_err(|error| Problem::validation(vec![error]))?;
    let availability = state
        .rpc
        .call(
            methods::EMAIL_AVAILABLE,
            &EmailAvailableParams {
                email: email.as_str().to_owned(),
            },
        )
        .await
        .map_err(rpc_problem)?;
    Ok(Json(availability))
}

/// The answer to an asynchronous creation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub command_id: Uuid,
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// Where the user will appear: `/users?email=...`.
    #[schema(example = "/users?email=ada%40example.com")]
    pub result: String,
}

fn prefers_async(request: &Request) -> bool {
    request
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.trim().eq_ignore_ascii_case("respond-async"))
}

/// `POST /user`: routed to the user service, or with `Prefer: respond-async`, sent to
/// user-queue as a command and answered 202 with where the user will appear.
#[utoipa::path(
    post,
    path = "/user",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("prefer" = Option<String>, Header, description = "`respond-async` to create the user asynchronously"),
        ("idempotency-key" = Option<String>, Header, description = "Your name for this creation, 1 to 255 visible ASCII characters: sent again, the request answers with the user it created instead of a 409 (for a day after); with `respond-async`, the user is created once however often the command is sent"),
    ),
    request_body(content = NewUserFields, content_type = "application/json"),
    responses(
        (status = 201, description = "The user was created (or, for an `Idempotency-Key` sent before, had been)", body = User,
            headers(("location" = String, description = "Where the user can be read"))),
        (status = 202, description = "With `Prefer: respond-async`: the command was accepted", body = Accepted,
            headers(("location" = String, description = "Where the user will appear"))),
        (status = 400, description = "The body is not JSON, not an object, or has invalid fields; or the `Idempotency-Key` is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json",
            headers(("www-authenticate" = String, description = "The bearer challenge"))),
        (status = 409, description = "A user with this email exists already (with `respond-async` too, checked over RPC before the command is sent, unless an `Idempotency-Key` is given)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` was sent before with another name or email", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", body = Problem, content_type = "application/problem+json",
            headers(("retry-after" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The user service cannot be reached", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the broker is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The user service did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(State(state): State<AppState>, request: Request) -> Response {
    if !prefers_async(&request) {
        return state.proxy.forward(&state.user, request).await;
    }
    match create_user_later(&state, request).await {
        Ok(accepted) => accepted.into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The asynchronous creation: the user service's own rules first (an invalid user is a 400
/// now, not a command user-queue would dead-letter after the 202), then the command.
async fn create_user_later(
    state: &AppState,
    request: Request,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 2],
        Json<Accepted>,
    ),
    Problem,
> {
    // With a key the command's id is the key's event id, as the user service derives it: the
    // same request sent again, either way, creates its user once.
    let subject = request
        .extensions()
        .get::<Subject>()
        .map(|Subject(subject)| subject.clone())
        .unwrap_or_default();
    let command_id = service_kit::headers::creation_event_id(request.headers(), &subject)?;
    let body = JsonObject::from_request(request, &()).await?;
    let user = NewUser::from_json(&body.0).map_err(Problem::invalid_fields)?;
    // A taken email is a 409 now rather than a dead-lettered command later. With a key the
    // email may be taken by this very request sent before, which user-queue recognises; and a
    // check that cannot answer does not stop the creation (the command's consumer decides).
    if command_id.is_none() {
        let asked = state
            .rpc
            .call::<_, EmailAvailability>(
                methods::EMAIL_AVAILABLE,
                &EmailAvailableParams {
                    email: user.email.as_str().to_owned(),
                },
            )
            .await;
        match asked {
            Ok(EmailAvailability {
                available: false, ..
            }) => return Err(Problem::conflict("a user with this email exists already")),
            Ok(_) => {}
            Err(error) => {
                tracing::info!(%error, "the email could not be checked; the command goes unchecked");
            }
        }
    }
    let mut command = CreateUser::new(user.name.as_str(), user.email.as_str());
    if let Some(id) = command_id {
        command.id = id;
    }
    let body = serde_json::to_vec(&command).expect("a command serializes");
    let id = command.id.to_string();
    state
        .commands
        .publish(Outgoing::new(
            contract::broker::USER_COMMANDS_EXCHANGE,
            contract::broker::CREATE_USER,
            &id,
            &body,
        ))
        .await
        .map_err(|error| match error {
            SharedPublishError::Unreachable(_) => {
                Problem::unavailable("user-queue cannot be reached; try again shortly")
                    .caused_by(error)
            }
            SharedPublishError::Publish(_) => {
                Problem::unavailable("user-queue did not accept the command; try again shortly")
                    .caused_by(error)
            }
        })?;
    let location = format!("/users?email={}", urlencode(user.email.as_str()));
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, location.clone()),
            (
                header::HeaderName::from_static("preference-applied"),
                "respond-async".to_owned(),
            ),
        ],
        Json(Accepted {
            command_id: command.id,
            status: "accepted",
            result: location,
        }),
    ))
}

/// Percent-encodes a query value.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
