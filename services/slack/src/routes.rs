//! The HTTP API of the slack service, as the original had it: `POST /` sends a message to a
//! channel, `GET /messages` lists a channel's messages.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use service_kit::{FieldError, JsonObject, Problem};

use crate::domain::{Channel, MessageText, StoredMessage};
use crate::startup::Slack;
use crate::store::StoreError;

pub const DEFAULT_PAGE_SIZE: isize = 10;
pub const MAX_PAGE_SIZE: isize = 100;

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(error) => {
                tracing::warn!(%error, "redis is unavailable");
                Problem::unavailable("the message store is unavailable; try again shortly")
            }
            StoreError::Other(error) => {
                tracing::error!(%error, "redis error");
                Problem::internal()
            }
        }
    }
}

/// `POST /` `{"channel": "#user", "message": "User 7 created"}` -> 201 with the stored message
/// and, in `slack`, what became of its delivery to the webhook.
#[utoipa::path(
    post,
    path = "/",
    tag = "messages",
    request_body(content = crate::domain::NewMessageBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored; `slack` tells the webhook delivery", body = crate::domain::PostedMessage),
        (status = 400, description = "The body is not JSON, not an object, or has invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn post_message(
    State(slack): State<Slack>,
    body: JsonObject,
) -> Result<Response, Problem> {
    let (channel, text) = match (
        body.field("channel", Channel::parse),
        body.field("message", MessageText::parse),
    ) {
        (Ok(channel), Ok(text)) => (channel, text),
        (channel, text) => {
            return Err(Problem::validation(
                [channel.err(), text.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let message = StoredMessage::new(&channel, &text);
    slack.store.push(&message).await?;
    let delivery = slack.deliver(&message).await;
    let mut body = serde_json::to_value(&message).expect("a message serializes");
    body["slack"] = json!(delivery.as_str());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct MessagesParams {
    channel: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

fn bounded(
    name: &str,
    raw: Option<&str>,
    range: std::ops::RangeInclusive<isize>,
    default: isize,
) -> Result<isize, FieldError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<isize>()
            .ok()
            .filter(|value| range.contains(value))
            .ok_or_else(|| {
                FieldError::new(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

/// `GET /messages?channel=%23user&limit=10&offset=0` -> the channel's messages, newest first.
#[utoipa::path(
    get,
    path = "/messages",
    tag = "messages",
    params(
        ("channel" = String, Query, description = "The channel, e.g. `#user` (`%23user` in a URL)"),
        ("limit" = Option<i64>, Query, description = "1 to 100 (default 10)"),
        ("offset" = Option<i64>, Query, description = "Messages to skip, newest first (default 0)"),
    ),
    responses(
        (status = 200, description = "The channel's messages, newest first", body = Vec<StoredMessage>),
        (status = 400, description = "No channel, or a bad limit or offset", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_messages(
    State(slack): State<Slack>,
    params: Result<Query<MessagesParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(params) = params.map_err(|rejection| Problem::malformed(rejection.body_text()))?;
    let channel = match params.channel.as_deref() {
        None => Err(FieldError::new("channel", "is required")),
        Some(raw) => Channel::parse(raw).map_err(|detail| FieldError::new("channel", detail)),
    };
    let limit = bounded(
        "limit",
        params.limit.as_deref(),
        1..=MAX_PAGE_SIZE,
        DEFAULT_PAGE_SIZE,
    );
    let offset = bounded(
        "offset",
        params.offset.as_deref(),
        0..=crate::store::MAX_MESSAGES_PER_CHANNEL,
        0,
    );
    let (channel, limit, offset) = match (channel, limit, offset) {
        (Ok(channel), Ok(limit), Ok(offset)) => (channel, limit, offset),
        (channel, limit, offset) => {
            return Err(Problem::validation(
                [channel.err(), limit.err(), offset.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
            ));
        }
    };
    let messages = slack.store.list(channel.as_str(), limit, offset).await?;
    Ok(Json(messages).into_response())
}
