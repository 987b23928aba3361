//! The gateway's router: the public API routed to the services, `/health`, and the layers
//! around it (authentication on writes, rate limits, CORS, telemetry).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use messaging::events::CreateUser;
use messaging::users::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey, NewUser};
use serde_json::json;
use service_kit::{JsonObject, Problem};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::auth::{self, Authenticator, Subject};
use crate::commands::{Commands, SendError};
use crate::configuration::{DEVELOPMENT_SECRET, Settings, TokenKey, Upstream};
use crate::docs::ApiDoc;
use crate::health;
use crate::proxy::Proxy;
use crate::rate_limit::{self, RateLimit};

#[derive(Clone)]
pub struct AppState {
    pub proxy: Proxy,
    pub user: Upstream,
    pub slack: Upstream,
    pub health_targets: Arc<Vec<Upstream>>,
    pub health_timeout: Duration,
    pub commands: Arc<Commands>,
}

#[utoipa::path(
    get,
    path = "/user/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = crate::docs::User),
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
    responses(
        (status = 200, description = "Users, newest first; `Link: rel=\"next\"` when the page is full", body = Vec<crate::docs::User>),
        (status = 400, description = "A bad limit or before", body = Problem, content_type = "application/problem+json"),
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
    responses(
        (status = 200, description = "The channel's messages, newest first", body = Vec<crate::docs::Message>),
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
    request_body(content = crate::docs::NewUser, content_type = "application/json"),
    responses(
        (status = 201, description = "The user was created (or, for an `Idempotency-Key` sent before, had been)", body = crate::docs::User,
            headers(("location" = String, description = "Where the user can be read"))),
        (status = 202, description = "With `Prefer: respond-async`: the command was accepted", body = crate::docs::Accepted,
            headers(("location" = String, description = "Where the user will appear"))),
        (status = 400, description = "The body is not JSON, not an object, or has invalid fields; or the `Idempotency-Key` is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json",
            headers(("www-authenticate" = String, description = "The bearer challenge"))),
        (status = 409, description = "A user with this email exists already", body = Problem, content_type = "application/problem+json"),
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
    // With a key the command's id is the key's event id, as the user service derives it: the
    // same request sent again, either way, creates its user once.
    let command_id = match request.headers().get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => match IdempotencyKey::parse(value.as_bytes()) {
            Ok(key) => {
                let subject = request.extensions().get::<Subject>();
                Some(key.event_id(subject.map_or("", |Subject(subject)| subject.as_str())))
            }
            Err(detail) => return Problem::malformed(detail).into_response(),
        },
    };
    let body = match JsonObject::from_request(request, &()).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    // The user service's own rules: an invalid user is a 400 now, not a command that
    // user-queue would dead-letter after the 202.
    let user = match NewUser::from_json(&body) {
        Ok(user) => user,
        Err(problem) => return problem.into_response(),
    };
    let email = user.email.as_str();
    let mut command = CreateUser::new(user.name.as_str(), email);
    if let Some(id) = command_id {
        command.id = id;
    }
    match state.commands.send(&command).await {
        Ok(()) => {
            let location = format!("/users?email={}", urlencode(email));
            (
                StatusCode::ACCEPTED,
                [
                    (header::LOCATION, location.clone()),
                    (
                        header::HeaderName::from_static("preference-applied"),
                        "respond-async".to_owned(),
                    ),
                ],
                axum::Json(json!({
                    "command_id": command.id,
                    "status": "accepted",
                    "result": location,
                })),
            )
                .into_response()
        }
        Err(SendError::Unreachable) => {
            Problem::unavailable("user-queue cannot be reached; try again shortly").into_response()
        }
        Err(SendError::Publish(error)) => {
            tracing::warn!(%error, "the command was not accepted by the broker");
            Problem::unavailable("user-queue did not accept the command; try again shortly")
                .into_response()
        }
    }
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

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([
            header::LOCATION,
            header::LINK,
            header::RETRY_AFTER,
            header::HeaderName::from_static(telemetry::TRACE_ID_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}

pub fn app(settings: &Settings, metrics: &Metrics) -> (Router, RateLimit) {
    let state = AppState {
        proxy: Proxy::new(settings.upstream_timeout),
        user: settings.user.clone(),
        slack: settings.slack.clone(),
        health_targets: Arc::new(vec![
            settings.user.clone(),
            settings.slack.clone(),
            settings.user_queue.clone(),
            settings.slack_queue.clone(),
        ]),
        health_timeout: settings.health_timeout,
        commands: Arc::new(Commands::new(settings.amqp_url.clone())),
    };
    let authenticator = Authenticator::new(&settings.token_key, &settings.audience);
    let limits = RateLimit::new(settings.rate_per_second, settings.rate_burst);
    let api = Router::new()
        .route(
            "/user",
            post(create_user).route_layer(middleware::from_fn_with_state(
                authenticator,
                auth::require_token,
            )),
        )
        .route("/user/{id}", get(get_user))
        .route("/users", get(list_users))
        .route("/messages", get(list_messages))
        .route("/health", get(health::health))
        .merge(service_kit::probes::ping())
        .route_layer(middleware::from_fn_with_state(
            limits.clone(),
            rate_limit::limit,
        ))
        .with_state(state);
    // Liveness and readiness of the gateway itself, which holds no state: `/health` is the
    // stack's.
    let probes = service_kit::probes::health(|| async { Ok(()) })
        .merge(metrics.router())
        .merge(service_kit::openapi_route(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .merge(SwaggerUi::new("/docs").config(Config::from("/openapi.json")));
    let router = telemetry::instrument(service_kit::conventions(api))
        .merge(probes)
        .layer(cors(&settings.cors_origins));
    (router, limits)
}

/// Runs the gateway on `listener` until `shutdown` completes.
pub async fn run(
    settings: Settings,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if settings.token_key == TokenKey::Secret(DEVELOPMENT_SECRET.to_owned()) {
        tracing::warn!(
            "JWT_SECRET is not set: tokens are checked with the public development secret"
        );
    }
    let (app, limits) = app(&settings, &metrics);
    let forgetting = tokio::spawn(limits.forget_idle_clients());
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    let served = service_kit::serve::serve(listener, app, shutdown).await;
    forgetting.abort();
    served
}
