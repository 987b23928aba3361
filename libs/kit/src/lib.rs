//! What every process of the stack shares beyond telemetry: the HTTP API conventions a client
//! sees (problem-details errors, JSON bodies, query parameters, the headers between processes,
//! the ping and health probes), how a process runs (launching it, waiting for its dependencies
//! with backoff, serving with a graceful stop), and the faults switched on at run time.

pub mod faults;
pub mod headers;
pub mod json;
pub mod launch;
pub mod params;
pub mod probes;
pub mod problem;
pub mod redis_connection;
pub mod retry;
pub mod serve;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use json::JsonObject;
pub use launch::{Launch, LaunchError, Service, Shutdown};
pub use problem::{FieldError, Problem};

/// Applies the conventions every service router shares: problem-details answers for unknown
/// paths and methods, and the body size limit. Call it after the routes are added.
pub fn conventions<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(probes::not_found)
        .method_not_allowed_fallback(probes::method_not_allowed)
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
}

/// The router of a service behind the gateway: its `routes` and `/ping`, with the route faults
/// struck on them and the caller the gateway names recorded on their spans, under the
/// conventions, traced and measured; then `probes` (health, metrics, the OpenAPI document),
/// which are neither.
pub fn service_router<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: S,
    faults: faults::Faults,
    trust: headers::GatewayTrust,
    probes: Router,
) -> Router {
    let api = routes
        .merge(probes::ping())
        .route_layer(axum::middleware::from_fn_with_state(
            faults,
            faults::strike_routes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            trust,
            headers::record_enduser,
        ))
        .with_state(state);
    telemetry::instrument(conventions(api)).merge(probes)
}

/// `GET /openapi.json`: the service's OpenAPI 3.1 document, with the probes every process
/// answers (`/ping`, `/health/live`, `/health/ready`) added.
pub fn openapi_route<S: Clone + Send + Sync + 'static>(
    mut doc: utoipa::openapi::OpenApi,
) -> Router<S> {
    doc.merge(<probes::ProbesDoc as utoipa::OpenApi>::openapi());
    let doc = std::sync::Arc::new(doc);
    Router::new().route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = std::sync::Arc::clone(&doc);
            async move { axum::Json((*doc).clone()) }
        }),
    )
}

/// The OpenAPI document of a process whose only HTTP endpoints are the probes (a consumer).
pub fn probes_only_openapi(name: &str, version: &str) -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new()
        .info(utoipa::openapi::Info::new(name, version))
        .build()
}
