//! `POST /otlp/v1/traces`: the page's own spans, relayed into the stack's traces
//! (`telemetry::frontend`), as the OpenTelemetry demo's collector takes its frontend's behind
//! its proxy. Same-origin only, 64 KiB at most, at a rate of its own, and never in the way of
//! the gateway's own requests: what it accepts is queued for export, and a refusal names what
//! is wrong.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use service_kit::Problem;
use telemetry::frontend::{Encoding, FrontendRelay};

use crate::origin::AllowedOrigins;

/// The route of the relay.
pub const ROUTE: &str = "/otlp/v1/traces";
/// The largest body relayed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Relay calls a client may make: the page sends one every few seconds.
pub const RATE_PER_SECOND: u32 = 5;
pub const RATE_BURST: u32 = 20;

/// OTLP's answer to an export that was taken whole.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportAnswer {
    /// Empty: nothing was refused.
    #[schema(value_type = Object)]
    pub partial_success: serde_json::Map<String, serde_json::Value>,
}

/// `POST /otlp/v1/traces`: OTLP/HTTP, JSON or protobuf.
#[utoipa::path(
    post,
    path = "/otlp/v1/traces",
    tag = "frontend",
    request_body(description = "An OTLP ExportTraceServiceRequest whose resource names `service.name` = `frontend`, as `application/json` or `application/x-protobuf`, at most 64 KiB and 512 spans", content_type = "application/json"),
    responses(
        (status = 200, description = "Taken, to be exported with the stack's own spans", body = ExportAnswer),
        (status = 400, description = "Not OTLP, another service's spans, or a span that breaks a rule (named)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Sent from another origin than the page's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither application/json nor application/x-protobuf", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many relay calls from this client", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn relay(
    State(relay): State<Arc<FrontendRelay>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !AllowedOrigins::is_same_origin(&headers) {
        return Problem::forbidden("the page's spans are taken from its own origin only")
            .into_response();
    }
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let Some(encoding) = Encoding::of(given) else {
        return Problem::unsupported_media_type(
            "send OTLP as application/json or application/x-protobuf",
        )
        .into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return Problem::payload_too_large(MAX_BODY_BYTES).into_response();
    };
    match (relay.accept(encoding, &body), encoding) {
        (Ok(_), Encoding::Json) => Json(ExportAnswer {
            partial_success: serde_json::Map::new(),
        })
        .into_response(),
        // An empty ExportTraceServiceResponse is no bytes at all.
        (Ok(_), Encoding::Protobuf) => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Body::empty(),
        )
            .into_response(),
        (Err(refused), _) => Problem::malformed(refused.0).into_response(),
    }
}
