//! The instrumented HTTP client: every outgoing request gets a CLIENT span, carries the current
//! trace context in its headers, and is measured in `http_client_request_duration_seconds`.

use std::time::Instant;

use http::Extensions;
use metrics::histogram;
use opentelemetry::trace::TraceContextExt;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::http_server::method_label;
use crate::propagation;

pub(crate) const REQUEST_DURATION: &str = "http_client_request_duration_seconds";

/// Wraps `client` so that its requests are traced, propagated and measured.
pub fn client(client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client).with(TracingMiddleware).build()
}

/// Marks a request whose URL is a credential (a webhook, say): its span then records only the
/// origin (`scheme://host:port`). Add it with `RequestBuilder::with_extension(SensitiveUrl)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SensitiveUrl;

/// The middleware behind [`client`], for callers that build their own middleware stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingMiddleware;

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let started = Instant::now();
        let method = method_label(request.method());
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or_default();
        // The peer label is the configured upstream (host:port), never a path: bounded.
        let peer = format!("{host}:{port}");
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = method,
            http.response.status_code = Empty,
            server.address = host.as_str(),
            server.port = port,
            url.full = if extensions.get::<SensitiveUrl>().is_some() {
                url.origin().ascii_serialization()
            } else {
                crate::redact_url(url.as_str())
            }
            .as_str(),
            error.type = Empty,
            fault.injected = Empty,
        );
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            propagation::inject_http(&cx, request.headers_mut());
        }

        let result = next.run(request, extensions).instrument(span.clone()).await;

        let status_label = match &result {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                if status.is_client_error() || status.is_server_error() {
                    crate::record_error(&span, status.as_str());
                }
                status.as_str().to_owned()
            }
            Err(error) => {
                let kind = NoAnswer::of(error).as_str();
                crate::record_error(&span, kind);
                kind.to_owned()
            }
        };
        histogram!(
            REQUEST_DURATION,
            "method" => method,
            "peer" => peer,
            "status" => status_label,
        )
        .record(started.elapsed().as_secs_f64());
        result
    }
}

/// Why a request got no answer, in the few words every caller tells apart: waited too long,
/// never connected (refused, unreachable), the server's certificate refused, or anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    Timeout,
    Connect,
    /// The TLS handshake failed, with rustls' reason (an untrusted or expired certificate, a
    /// name that does not match): a misconfiguration that no retry mends.
    Tls(String),
    Other,
}

impl NoAnswer {
    pub fn of(error: &reqwest_middleware::Error) -> Self {
        match error {
            reqwest_middleware::Error::Reqwest(error) if error.is_timeout() => Self::Timeout,
            reqwest_middleware::Error::Reqwest(error) if error.is_connect() => {
                match tls_failure(error) {
                    Some(reason) => Self::Tls(reason),
                    None => Self::Connect,
                }
            }
            _ => Self::Other,
        }
    }

    /// The bounded `error.type` of the CLIENT span and `status` label of the client metric.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Tls(_) => "tls",
            Self::Other => "error",
        }
    }
}

/// rustls' reason, when a TLS handshake is what failed. It sits in the error's chain inside
/// `io::Error`s (whose `source` skips what they wrap, hence `get_ref`).
fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = error.source();
    while let Some(error) = cause {
        let mut candidate = error;
        loop {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            match candidate
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(inner) => candidate = inner,
                None => break,
            }
        }
        cause = error.source();
    }
    None
}
