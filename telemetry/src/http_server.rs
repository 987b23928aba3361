//! The axum middleware every HTTP service wraps its router in.
//!
//! For each request it continues the caller's trace (W3C `traceparent`, B3 single or multi
//! header), opens a SERVER span named `METHOD /route/{template}` with the OpenTelemetry HTTP
//! attributes, measures the request, and returns the trace id in the `x-trace-id` response
//! header so a caller can look the request up in Zipkin.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, Method, Version, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics::{gauge, histogram};
use opentelemetry::trace::TraceContextExt;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

pub(crate) const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
pub(crate) const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// The response header that carries the request's trace id (32 lower-case hex digits).
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Sets `enduser.id` on the current request's SERVER span.
pub fn record_enduser(subject: &str) {
    tracing::Span::current().record("enduser.id", subject);
}

/// The cause of a server error, put in the response's extensions by whoever answered it: the
/// middleware logs it, once, inside the request's span (so the line carries the trace id), and
/// nothing else needs to.
#[derive(Clone)]
pub struct Failure(pub Arc<dyn std::error::Error + Send + Sync>);

/// The `route` label and `http.route` of requests that matched no route: one value for all, so
/// a scan of random paths cannot grow the number of series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Wraps every route of `router`, and its fallback, in the request telemetry. Call it last,
/// after every route and the fallback are added, so that all of them are covered. A layer
/// added this way runs after routing, so the matched route template is known from the start.
pub fn instrument<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    instrument_edge(router, Edge::default())
}

/// How the edge of the stack (the gateway, which the internet calls) treats a caller's trace
/// context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// `OTEL_TRUST_INBOUND_CONTEXT`: continue the caller's trace (and its sampling decision,
    /// and carry its baggage), or start a new one linked to it, so that callers from the
    /// internet can neither choose trace ids nor force sampling.
    pub trust_inbound_context: bool,
}

impl Default for Edge {
    fn default() -> Self {
        Self {
            trust_inbound_context: true,
        }
    }
}

/// [`instrument`], with the edge's trust in inbound trace context.
pub fn instrument_edge<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    edge: Edge,
) -> Router<S> {
    router.layer(middleware::from_fn(move |request, next| {
        trace_request(edge, request, next)
    }))
}

/// The request method as a bounded label: the registered methods, or `_OTHER`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "unknown",
    }
}

/// Decrements the in-flight gauge even when the client goes away mid-request.
struct InFlight(&'static str);

impl InFlight {
    fn start(method: &'static str) -> Self {
        gauge!(ACTIVE_REQUESTS, "method" => method).increment(1.0);
        Self(method)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(ACTIVE_REQUESTS, "method" => self.0).decrement(1.0);
    }
}

async fn trace_request(edge: Edge, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let _in_flight = InFlight::start(method);

    let headers = request.headers();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_label = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let name = match &route {
        Some(route) => format!("{method} {}", route.as_str()),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route.as_ref().map(MatchedPath::as_str),
        http.response.status_code = Empty,
        url.path = request.uri().path(),
        url.scheme = "http",
        server.address = Empty,
        network.protocol.version = protocol_version(request.version()),
        client.address = Empty,
        user_agent.original = Empty,
        error.type = Empty,
        fault.injected = Empty,
        enduser.id = Empty,
    );
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        span.record("server.address", host);
    }
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.record("user_agent.original", agent);
    }
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
    {
        span.record("client.address", peer.ip().to_string());
    }
    // A malformed incoming context is ignored: the request starts a new trace.
    let inbound = propagation::extract_http(headers);
    if edge.trust_inbound_context {
        let _ = span.set_parent(inbound);
    } else {
        // A new root, linked to what the caller sent (without its baggage).
        let caller = inbound.span().span_context().clone();
        if caller.is_valid() {
            span.add_link(caller);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        crate::record_error(&span, status.as_str());
        if let Some(Failure(cause)) = response.extensions().get::<Failure>() {
            let status = status.as_u16();
            span.in_scope(|| match status {
                500 => tracing::error!(status, error = %cause, "request failed"),
                _ => tracing::warn!(status, error = %cause, "request failed"),
            });
        }
    }
    histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route_label.to_owned(),
        "status" => status.as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());

    if let Ok(value) = HeaderValue::from_str(&trace_id.to_string()) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
}
