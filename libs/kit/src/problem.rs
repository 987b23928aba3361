//! Problem details (RFC 9457): the one shape of every error body the services return.
//!
//! ```json
//! {"type": "urn:problem:validation", "title": "Invalid request", "status": 400,
//!  "detail": "2 fields are invalid",
//!  "errors": [{"pointer": "#/name", "detail": "must not be empty"}, ...]}
//! ```
//!
//! `type` is stable and names the kind of problem; `title` is the same for every problem of a
//! type; `detail` is about this occurrence; `errors` lists each failing field by JSON pointer.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One failing field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `#/email`.
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: &str, detail: impl Into<String>) -> Self {
        Self {
            pointer: format!("#/{field}"),
            detail: detail.into(),
        }
    }
}

impl From<contract::InvalidField> for FieldError {
    fn from(invalid: contract::InvalidField) -> Self {
        Self::new(invalid.field, invalid.detail)
    }
}

/// An error, as RFC 9457 problem details (`application/problem+json`).
// A server error can carry its cause (`Problem::caused_by`): it never reaches the client, but
// the request middleware logs it, once, with the request's trace.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, stable across releases.
    #[serde(rename = "type")]
    #[schema(example = "urn:problem:validation")]
    pub kind: &'static str,
    pub title: &'static str,
    /// The HTTP status.
    #[serde(serialize_with = "serialize_status")]
    #[schema(value_type = u16, example = 400)]
    pub status: StatusCode,
    pub detail: String,
    /// Every failing field, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    #[schema(ignore)]
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Problems are equal when clients would see the same body.
impl PartialEq for Problem {
    fn eq(&self, other: &Self) -> bool {
        (
            self.kind,
            self.title,
            self.status,
            &self.detail,
            &self.errors,
        ) == (
            other.kind,
            other.title,
            other.status,
            &other.detail,
            &other.errors,
        )
    }
}

impl Eq for Problem {}

fn serialize_status<S: serde::Serializer>(
    status: &StatusCode,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u16(status.as_u16())
}

impl Problem {
    fn new(
        kind: &'static str,
        title: &'static str,
        status: StatusCode,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            title,
            status,
            detail: detail.into(),
            errors: Vec::new(),
            cause: None,
        }
    }

    /// Keeps `cause` with the problem, for the log line of a server error.
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// A body that is not what the endpoint reads (bad JSON, not an object, bad query).
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:malformed-request",
            "Malformed request",
            StatusCode::BAD_REQUEST,
            detail,
        )
    }

    /// Fields that break the rules of the contract; each one is listed.
    pub fn invalid_fields(fields: Vec<contract::InvalidField>) -> Self {
        Self::validation(fields.into_iter().map(FieldError::from).collect())
    }

    /// Well-formed input whose fields break the rules; every failing field is listed.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        Self {
            errors,
            ..Self::new(
                "urn:problem:validation",
                "Invalid request",
                StatusCode::BAD_REQUEST,
                detail,
            )
        }
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:unsupported-media-type",
            "Unsupported media type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail,
        )
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            "urn:problem:payload-too-large",
            "Payload too large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body must not exceed {limit_bytes} bytes"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:not-found",
            "Not found",
            StatusCode::NOT_FOUND,
            detail,
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            "urn:problem:method-not-allowed",
            "Method not allowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "this resource does not support that method",
        )
    }

    /// The request conflicts with stored state, e.g. a duplicate of a unique value.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:conflict",
            "Conflict",
            StatusCode::CONFLICT,
            detail,
        )
    }

    /// An `Idempotency-Key` sent again with a different request than the one it first named.
    pub fn idempotency_key_reused(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:idempotency-key-reused",
            "Idempotency key reused",
            StatusCode::UNPROCESSABLE_ENTITY,
            detail,
        )
    }

    /// A dependency (database, cache, broker) cannot be reached; retrying later may succeed.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:dependency-unavailable",
            "Service unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
        )
    }

    /// No valid credentials; the response also needs a `WWW-Authenticate` header.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:unauthorized",
            "Unauthorized",
            StatusCode::UNAUTHORIZED,
            detail,
        )
    }

    /// Valid credentials that do not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:forbidden",
            "Forbidden",
            StatusCode::FORBIDDEN,
            detail,
        )
    }

    /// A failure switched on on purpose (`/admin/faults`), answered with its `status`.
    pub fn fault_injected(status: StatusCode) -> Self {
        Self::new(
            "urn:problem:fault-injected",
            "Fault injected",
            status,
            "a fault switched on in /admin/faults answered this request",
        )
    }

    /// The client sent too many requests; the response also needs a `Retry-After` header.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:too-many-requests",
            "Too many requests",
            StatusCode::TOO_MANY_REQUESTS,
            detail,
        )
    }

    /// The request took longer than the server gives any request.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            "urn:problem:request-timeout",
            "Request timeout",
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {} s", limit.as_secs()),
        )
    }

    /// An upstream service could not be reached or answered nonsense.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:bad-gateway",
            "Bad gateway",
            StatusCode::BAD_GATEWAY,
            detail,
        )
    }

    /// An upstream service did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            "urn:problem:gateway-timeout",
            "Gateway timeout",
            StatusCode::GATEWAY_TIMEOUT,
            detail,
        )
    }

    /// A failure that is ours; the detail never carries internals (they go to the log).
    pub fn internal() -> Self {
        Self::new(
            "urn:problem:internal",
            "Internal error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request could not be completed; the trace id in x-trace-id locates it",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let cause = self.cause.clone();
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(CONTENT_TYPE),
        );
        if let Some(cause) = cause {
            response
                .extensions_mut()
                .insert(telemetry::http_server::Failure(cause));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problems_list_every_field() {
        let problem = Problem::validation(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("email", "is required"),
        ]);
        insta::assert_json_snapshot!(problem, @r###"
        {
          "type": "urn:problem:validation",
          "title": "Invalid request",
          "status": 400,
          "detail": "2 fields are invalid",
          "errors": [
            {
              "pointer": "#/name",
              "detail": "must not be empty"
            },
            {
              "pointer": "#/email",
              "detail": "is required"
            }
          ]
        }
        "###);
    }

    #[test]
    fn the_response_has_the_status_and_the_problem_content_type() {
        let response = Problem::conflict("taken").into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
