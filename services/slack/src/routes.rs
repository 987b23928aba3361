//! The HTTP API of the slack service, as the original had it: `POST /` sends a message to a
//! channel, `GET /messages` lists a channel's messages.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use contract::messages::Message;
use serde::{Deserialize, Serialize};
use service_kit::params::whole_number;
use service_kit::{FieldError, JsonObject, Problem};

use crate::domain::{Channel, NewMessage, new_message};
use crate::state::AppState;
use crate::store::StoreError;
use crate::webhook::Delivery;

pub const DEFAULT_PAGE_SIZE: i64 = 10;
pub const MAX_PAGE_SIZE: i64 = 100;

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            error @ StoreError::Unavailable(_) => {
                Problem::unavailable("the message store is unavailable; try again shortly")
                    .caused_by(error)
            }
            error @ StoreError::Other(_) => Problem::internal().caused_by(error),
        }
    }
}

/// The answer of `POST /`: the stored message and what became of its delivery to Slack.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostedMessage {
    #[schema(example = "#user")]
    pub channel: String,
    #[schema(example = "User 7 created")]
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub slack: Delivery,
}

/// `POST /` `{"channel": "#user", "message": "User 7 created"}` -> 201 with the stored message
/// and, in `slack`, what became of its delivery to the webhook.
#[utoipa::path(
    post,
    path = "/",
    tag = "messages",
    request_body(content = NewMessage, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored; `slack` tells the webhook delivery", body = PostedMessage),
        (status = 400, description = "The body is not JSON, not an object, or has invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn post_message(
    State(state): State<AppState>,
    body: JsonObject,
) -> Result<(StatusCode, Json<PostedMessage>), Problem> {
    let (channel, text) = NewMessage::read(&body.0).map_err(Problem::invalid_fields)?;
    let message = new_message(&channel, &text);
    state.store.push(&message).await?;
    let slack = match state.deliver(&message.channel, &message.message).await {
        Ok(delivery) => delivery,
        Err(error) => {
            tracing::warn!(%error, "the message was stored but not delivered to Slack");
            error.delivery()
        }
    };
    let Message {
        channel,
        message,
        created_at,
    } = message;
    Ok((
        StatusCode::CREATED,
        Json(PostedMessage {
            channel,
            message,
            created_at,
            slack,
        }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct MessagesParams {
    channel: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
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
        (status = 200, description = "The channel's messages, newest first", body = Vec<Message>),
        (status = 400, description = "No channel, or a bad limit or offset", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_messages(
    State(state): State<AppState>,
    params: Result<Query<MessagesParams>, QueryRejection>,
) -> Result<Json<Vec<Message>>, Problem> {
    let Query(params) = params.map_err(|rejection| Problem::malformed(rejection.body_text()))?;
    let channel = match params.channel.as_deref() {
        None => Err(FieldError::new("channel", "is required")),
        Some(raw) => Channel::parse(raw).map_err(|detail| FieldError::new("channel", detail)),
    };
    let limit = whole_number("limit", params.limit.as_deref(), 1..=MAX_PAGE_SIZE);
    let offset = whole_number(
        "offset",
        params.offset.as_deref(),
        0..=crate::store::MAX_MESSAGES_PER_CHANNEL as i64,
    );
    let (channel, limit, offset) = match (channel, limit, offset) {
        (Ok(channel), Ok(limit), Ok(offset)) => (
            channel,
            limit.unwrap_or(DEFAULT_PAGE_SIZE),
            offset.unwrap_or(0),
        ),
        (channel, limit, offset) => {
            return Err(Problem::validation(
                [channel.err(), limit.err(), offset.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
            ));
        }
    };
    let messages = state
        .store
        .list(channel.as_str(), limit as isize, offset as isize)
        .await?;
    Ok(Json(messages))
}
