//! JSON request bodies: the checks every JSON endpoint shares (content type, size, syntax, an
//! object at the top), each failing as a problem-details response rather than axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use crate::problem::{FieldError, Problem};

/// The largest JSON body any endpoint accepts; [`crate::conventions`] sets it on a router.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request body that is a JSON object, sent as `application/json` (or `application/*+json`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub Map<String, Value>);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default().to_owned());
        match content_type {
            Some(content_type) if is_json(&content_type) => {}
            Some(content_type) => {
                return Err(Problem::unsupported_media_type(format!(
                    "expected Content-Type: application/json, got {content_type:?}"
                )));
            }
            None => {
                return Err(Problem::unsupported_media_type(
                    "expected Content-Type: application/json",
                ));
            }
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::payload_too_large(MAX_BODY_BYTES)
                } else {
                    Problem::malformed(rejection.body_text())
                }
            })?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(_) => Err(Problem::malformed("the body must be a JSON object")),
            Err(error) => Err(Problem::malformed(format!(
                "the body is not valid JSON: {error}"
            ))),
        }
    }
}

impl JsonObject {
    /// Reads the string field `name` and parses it with `parse`; a missing field, another JSON
    /// type or a parse error is a [`FieldError`] naming the field.
    pub fn field<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, FieldError> {
        contract::fields::string_field(&self.0, name, parse).map_err(FieldError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }

    #[test]
    fn a_failing_field_is_a_field_error_naming_it() {
        let body = JsonObject(serde_json::json!({"age": 36}).as_object().unwrap().clone());
        assert_eq!(
            body.field("age", |s| Ok(s.to_owned())),
            Err(FieldError::new("age", "must be a string"))
        );
    }
}
