//! The frontend: a small page (plain HTML, CSS and JavaScript, built into the binary) served at
//! `/`, that creates users, shows the live feed with a link to each event's trace, and every
//! process's health; with the few endpoints it needs: `/ui/config` (where the tools are, and
//! whether the gateway runs in development mode) and, in development mode only, `/dev/token`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use service_kit::Problem;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// What the page may load and do: only its own files and this origin (the feed's WebSocket
/// included), no inline script or style, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
    img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// How long a development token lasts.
const DEVELOPMENT_TOKEN_TTL: Duration = Duration::from_secs(3600);

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /`: the page.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /assets/app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /assets/style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Where the page links to, and whether the gateway gives it a token.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UiConfig {
    #[schema(example = "http://localhost:9411/zipkin")]
    pub zipkin_url: String,
    #[schema(example = "http://localhost:3000")]
    pub grafana_url: String,
    #[schema(example = "http://localhost:9090")]
    pub prometheus_url: String,
    #[schema(example = "/docs")]
    pub docs_url: String,
    /// True when the gateway checks tokens with its development secret: the page then gets a
    /// token from `POST /dev/token` by itself.
    pub development: bool,
}

/// What the page's endpoints need.
#[derive(Debug, Clone)]
pub struct Page {
    pub ui: UiConfig,
    /// The `aud` of development tokens.
    pub audience: String,
}

#[utoipa::path(
    get,
    path = "/ui/config",
    tag = "frontend",
    responses((status = 200, description = "Where the page links to", body = UiConfig))
)]
pub async fn config(State(page): State<Page>) -> Json<UiConfig> {
    Json(page.ui)
}

/// A development token for the page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DevelopmentToken {
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds it stays valid.
    #[schema(example = 3600)]
    pub expires_in: u64,
}

/// `POST /dev/token`: a token signed with the development secret, for the page, when (and only
/// when) the gateway runs on it; 404 with `JWT_SECRET` or `JWT_PUBLIC_KEY` set.
#[utoipa::path(
    post,
    path = "/dev/token",
    tag = "frontend",
    responses(
        (status = 200, description = "A token for the subject `browser`", body = DevelopmentToken),
        (status = 404, description = "The gateway does not run on its development secret", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn development_token(
    State(page): State<Page>,
) -> Result<Json<DevelopmentToken>, Problem> {
    if !page.ui.development {
        return Err(Problem::not_found("no resource at this path"));
    }
    // The admin role too: the page's fault panel switches faults on and off.
    let claims = contract::tokens::Claims::new("browser", &page.audience, DEVELOPMENT_TOKEN_TTL)
        .with_roles(&[contract::tokens::ADMIN_ROLE]);
    Ok(Json(DevelopmentToken {
        token: contract::tokens::sign(&claims, contract::tokens::DEVELOPMENT_SECRET),
        token_type: "Bearer",
        expires_in: DEVELOPMENT_TOKEN_TTL.as_secs(),
    }))
}
