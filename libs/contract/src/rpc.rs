//! The RPC the user service answers over RabbitMQ: JSON-RPC 2.0, the request/reply pattern.
//!
//! A request goes to the durable queue [`crate::broker::USER_RPC_QUEUE`] (default exchange),
//! `content_type: application/json`, with `reply_to` (RabbitMQ's direct reply-to
//! `amq.rabbitmq.reply-to`, or a queue of the caller's) and `correlation_id`, and the trace
//! context in its headers as for events. The reply goes to `reply_to` with the same
//! `correlation_id`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `"2.0"`, the only version there is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    #[default]
    #[serde(rename = "2.0")]
    V2,
}

/// A call: `{"jsonrpc":"2.0","id":...,"method":"...","params":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: Version,
    /// Any JSON the caller likes; the reply carries it back.
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

/// A reply: the result, or the error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: Version,
    pub id: Value,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Result(Value),
    Error(Error),
}

impl Response {
    pub fn result(id: Value, result: Value) -> Self {
        Self {
            jsonrpc: Version::V2,
            id,
            outcome: Outcome::Result(result),
        }
    }

    pub fn error(id: Value, error: Error) -> Self {
        Self {
            jsonrpc: Version::V2,
            id,
            outcome: Outcome::Error(error),
        }
    }
}

/// A JSON-RPC error: a code from [`codes`], a message, and what it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Error {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Error {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// The error codes: JSON-RPC's own, and the application's (-32000 to -32099, the range
/// JSON-RPC leaves to servers).
pub mod codes {
    /// The request is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a request: not an object, a batch, no method, too large.
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params are not what the method takes; `data` names the field.
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The user database cannot be reached; calling again later may succeed.
    pub const UNAVAILABLE: i64 = -32001;
    /// The user asked for does not exist.
    pub const NOT_FOUND: i64 = -32004;
}

/// The methods of the user service.
pub mod methods {
    /// `{"email": "..."}` -> [`super::EmailAvailability`].
    pub const EMAIL_AVAILABLE: &str = "users.email_available";
    /// `{"id": n}` -> the user (`crate::users::User`), or [`super::codes::NOT_FOUND`].
    pub const GET_USER: &str = "users.get";
    pub const ALL: [&str; 2] = [EMAIL_AVAILABLE, GET_USER];
}

/// The params of `users.email_available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAvailableParams {
    pub email: String,
}

/// Whether an email is free: the same rules and the same case-insensitive comparison as
/// `POST /user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailAvailability {
    /// The email as compared: trimmed, in lower case.
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub available: bool,
}

/// The params of `users.get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUserParams {
    pub id: i64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_and_replies_have_json_rpcs_shape() {
        let request: Request = serde_json::from_value(json!({
            "jsonrpc": "2.0", "id": "7", "method": methods::EMAIL_AVAILABLE,
            "params": {"email": "Ada@Example.com"}
        }))
        .unwrap();
        assert_eq!(request.method, "users.email_available");
        assert!(
            serde_json::from_value::<Request>(json!({"jsonrpc": "1.0", "id": 1, "method": "x"}))
                .is_err()
        );
        assert_eq!(
            serde_json::to_value(Response::result(json!(7), json!({"ok": true}))).unwrap(),
            json!({"jsonrpc": "2.0", "id": 7, "result": {"ok": true}})
        );
        assert_eq!(
            serde_json::to_value(Response::error(
                json!("a"),
                Error::new(codes::INVALID_PARAMS, "invalid params")
                    .with_data(json!({"field": "email"}))
            ))
            .unwrap(),
            json!({"jsonrpc": "2.0", "id": "a", "error": {
                "code": -32602, "message": "invalid params", "data": {"field": "email"}}})
        );
        let parsed: Response = serde_json::from_value(
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}),
        )
        .unwrap();
        assert!(matches!(
            parsed.outcome,
            Outcome::Error(Error { code: -32700, .. })
        ));
    }
}
