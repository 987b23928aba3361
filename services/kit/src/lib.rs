//! HTTP API conventions shared by the services: problem-details errors, JSON bodies, the ping
//! and health probes, and serving with a graceful stop. Telemetry lives in `telemetry`; this
//! crate is about what a client sees.

pub mod json;
pub mod probes;
pub mod problem;
pub mod process;
pub mod serve;
pub mod settings;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use json::JsonObject;
pub use problem::{FieldError, Problem};

/// Applies the conventions every service router shares: problem-details answers for unknown
/// paths and methods, and the body size limit. Call it after the routes are added.
pub fn conventions<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(probes::not_found)
        .method_not_allowed_fallback(probes::method_not_allowed)
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
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
