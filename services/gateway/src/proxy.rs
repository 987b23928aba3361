//! Routing a request to a service: same method, path, query, body and content type; back come
//! the service's status, body and headers that matter to the client. A service that does not
//! answer in time is a 504, one that cannot be reached a 502, both naming the service. A
//! request that lost its connection is sent again when that is harmless.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use contract::headers::{ENDUSER, IDEMPOTENCY_KEY, INTERNAL_TOKEN, REQUEST_ID};
use reqwest_middleware::ClientWithMiddleware;
use service_kit::Problem;
use settings::Secret;
use telemetry::http_client::NoAnswer;

use crate::auth::Subject;
use crate::configuration::Upstream;

/// Request headers passed on to the services.
const REQUEST_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static(IDEMPOTENCY_KEY),
    HeaderName::from_static(REQUEST_ID),
];
/// Response headers passed back to the client.
const RESPONSE_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::LINK,
    header::RETRY_AFTER,
    HeaderName::from_static(REQUEST_ID),
];

/// Attempts at a request whose connection failed. A replica that stops closes its idle
/// keep-alive connections, and one may be taken for a request just then; the next attempt
/// takes another (or a new) connection, which the balancer in front of the replicas sends to
/// one that is ready.
const ATTEMPTS: usize = 3;

/// Whether a failed attempt may be made again: when it never connected, or when it lost its
/// connection and repeating it does no harm (an idempotent method, or an `Idempotency-Key`).
/// A timeout is not: the service may still be working on it.
fn worth_another(error: &reqwest_middleware::Error, repeatable: bool) -> bool {
    match NoAnswer::of(error) {
        NoAnswer::Connect => true,
        NoAnswer::Other => repeatable,
        NoAnswer::Timeout | NoAnswer::Tls(_) => false,
    }
}

#[derive(Clone)]
pub struct Proxy {
    client: ClientWithMiddleware,
    timeout: Duration,
    /// `INTERNAL_TOKEN`, which tells the services the request (and its subject) is ours.
    internal_token: Option<Secret>,
}

impl Proxy {
    pub fn new(timeout: Duration, internal_token: Option<Secret>) -> Self {
        Self {
            client: telemetry::http_client::client(reqwest::Client::new()),
            timeout,
            internal_token,
        }
    }

    pub fn client(&self) -> &ClientWithMiddleware {
        &self.client
    }

    /// Sends `request` to `upstream` and returns its answer.
    pub async fn forward(&self, upstream: &Upstream, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, service_kit::json::MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(_) => {
                return Problem::payload_too_large(service_kit::json::MAX_BODY_BYTES)
                    .into_response();
            }
        };
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let Ok(url) = upstream.url.join(path) else {
            return Problem::not_found("no resource at this path").into_response();
        };
        let mut outgoing = self
            .client
            .request(parts.method.clone(), url)
            .timeout(self.timeout)
            .body(body);
        for name in &REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        if let Some(Subject(subject)) = parts.extensions.get::<Subject>() {
            outgoing = outgoing.header(ENDUSER, subject);
        }
        if let Some(token) = &self.internal_token {
            outgoing = outgoing.header(INTERNAL_TOKEN, token.expose());
        }
        let repeatable =
            parts.method.is_idempotent() || parts.headers.contains_key(IDEMPOTENCY_KEY);
        let mut attempt = 1;
        let response = loop {
            let sent = match outgoing.try_clone() {
                Some(again) => again.send().await,
                None => break outgoing.send().await,
            };
            match sent {
                Err(error) if attempt < ATTEMPTS && worth_another(&error, repeatable) => {
                    attempt += 1;
                }
                sent => break sent,
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => return unreachable(upstream, error, self.timeout),
        };
        let status = response.status();
        let mut answer = Response::builder().status(status);
        for name in &RESPONSE_HEADERS {
            if let Some(value) = response.headers().get(name) {
                answer = answer.header(name, value);
            }
        }
        match response.bytes().await {
            Ok(body) => answer
                .body(Body::from(body))
                .unwrap_or_else(|_| Problem::internal().into_response()),
            Err(error) => unreachable(
                upstream,
                reqwest_middleware::Error::Reqwest(error),
                self.timeout,
            ),
        }
    }
}

/// The problem for a call that got no (complete) answer.
fn unreachable(
    upstream: &Upstream,
    error: reqwest_middleware::Error,
    timeout: Duration,
) -> Response {
    let name = upstream.name;
    let problem = match NoAnswer::of(&error) {
        NoAnswer::Timeout => Problem::gateway_timeout(format!(
            "{name} did not answer within {} ms",
            timeout.as_millis()
        )),
        _ => Problem::bad_gateway(format!("{name} cannot be reached")),
    };
    problem.caused_by(error).into_response()
}
