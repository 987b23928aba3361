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
use serde_json::json;
use service_kit::{JsonObject, Problem};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::{self, Authenticator};
use crate::commands::{Commands, SendError};
use crate::configuration::{DEVELOPMENT_SECRET, Settings, TokenKey, Upstream};
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

async fn to_user(State(state): State<AppState>, request: Request) -> Response {
    state.proxy.forward(&state.user, request).await
}

async fn to_slack(State(state): State<AppState>, request: Request) -> Response {
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
async fn create_user(State(state): State<AppState>, request: Request) -> Response {
    if !prefers_async(&request) {
        return state.proxy.forward(&state.user, request).await;
    }
    let body = match JsonObject::from_request(request, &()).await {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let text = |name: &str| body.field(name, |value| Ok::<_, String>(value.to_owned()));
    let (name, email) = match (text("name"), text("email")) {
        (Ok(name), Ok(email)) => (name, email),
        (name, email) => {
            return Problem::validation([name.err(), email.err()].into_iter().flatten().collect())
                .into_response();
        }
    };
    let command = CreateUser::new(name, email.clone());
    match state.commands.send(&command).await {
        Ok(()) => {
            let location = format!("/users?email={}", urlencode(&email));
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
        .route("/user/{id}", get(to_user))
        .route("/users", get(to_user))
        .route("/messages", get(to_slack))
        .route("/health", get(health::health))
        .merge(service_kit::probes::ping())
        .route_layer(middleware::from_fn_with_state(
            limits.clone(),
            rate_limit::limit,
        ))
        .with_state(state);
    // Liveness and readiness of the gateway itself, which holds no state: `/health` is the
    // stack's.
    let probes = service_kit::probes::health(|| async { Ok(()) }).merge(metrics.router());
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
