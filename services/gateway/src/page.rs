//! The frontend: a small page (plain HTML, CSS and JavaScript modules, built into the binary
//! from `assets/`) served at `/` and `/assets/*`, that creates users, shows the live feed with a
//! link to each event's trace, and every process's health; with the few endpoints it needs:
//! `/ui/config` (where the tools are, the faults it may switch, where its spans go, whether the
//! gateway runs in development mode) and, in development mode only, `/dev/token`.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use contract::faults::FaultKindInfo;
use serde::Serialize;
use service_kit::Problem;
use settings::Secret;

use crate::origin::AllowedOrigins;

/// The page's files, carried by the binary.
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// What the page may load and do: only its own files and this origin (the feed's WebSocket
/// and the span relay included), no inline script or style, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
    img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// How long a development token lasts.
const DEVELOPMENT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The media type of a file of the page, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The file at `path` of the page, with the headers that keep it to itself; 404 if there is
/// none.
fn file(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        return Problem::not_found("no resource at this path").into_response();
    };
    let mut response = Body::from(file.data).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type(path)),
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
    file("index.html")
}

/// `GET /assets/{*path}`: its modules and style sheet.
pub async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}

/// Where the page's own spans go.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FrontendTracing {
    /// The `service.name` the relay accepts.
    #[schema(example = "frontend")]
    pub service_name: &'static str,
    /// Where they are posted, as OTLP/HTTP JSON.
    #[schema(example = "/otlp/v1/traces")]
    pub traces_endpoint: &'static str,
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
    /// True in development mode: the page then gets a token from `POST /dev/token` by itself.
    pub development: bool,
    /// The faults the page may switch on (with an admin token); none while faults are off.
    pub fault_kinds: Vec<FaultKindInfo>,
    pub frontend: FrontendTracing,
}

/// What the page's endpoints need.
#[derive(Debug, Clone)]
pub struct Page {
    pub ui: UiConfig,
    /// The `aud` of development tokens.
    pub audience: String,
    /// What development tokens are signed with: `None` outside development mode, where
    /// `/dev/token` does not exist.
    pub development_secret: Option<Secret>,
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

/// `POST /dev/token`: a token for the page, signed with the gateway's secret, in development
/// mode only (`DEV_MODE`, or listening on loopback) and for the page's own origin only; never
/// with the admin role.
#[utoipa::path(
    post,
    path = "/dev/token",
    tag = "frontend",
    responses(
        (status = 200, description = "A token for the subject `browser`, without the admin role", body = DevelopmentToken),
        (status = 403, description = "Asked from another origin than the page's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in development mode, or tokens are checked with a public key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn development_token(
    State(page): State<Page>,
    headers: HeaderMap,
) -> Result<Json<DevelopmentToken>, Problem> {
    let Some(secret) = &page.development_secret else {
        return Err(Problem::not_found("no resource at this path"));
    };
    // Another site's script in a developer's browser must not get one for itself.
    if !AllowedOrigins::is_same_origin(&headers) {
        return Err(Problem::forbidden(
            "development tokens are for the page's own origin only",
        ));
    }
    // Never the admin role: that takes `mint-token --admin`, which takes the secret.
    let claims = contract::tokens::Claims::new("browser", &page.audience, DEVELOPMENT_TOKEN_TTL);
    Ok(Json(DevelopmentToken {
        token: contract::tokens::sign(&claims, secret.expose()),
        token_type: "Bearer",
        expires_in: DEVELOPMENT_TOKEN_TTL.as_secs(),
    }))
}
