//! The live feed the gateway serves at `GET /ws/events`: one JSON text frame per event, in the
//! order the gateway received them, each with the trace id of the request that caused it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::messages::Message;
use crate::users::User;

/// The kinds of event a client may ask for in `?types=`.
pub const TYPES: [&str; 2] = [crate::broker::USER_CREATED, crate::broker::MESSAGE_CREATED];

/// One frame: `{"type":"user.created","id","occurred_at","trace_id","user":{...}}` or
/// `{"type":"message.created",...,"message":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// 32 lower-case hex digits: the trace of the request that caused the event.
    pub trace_id: String,
    #[serde(flatten)]
    pub event: FrameEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FrameEvent {
    #[serde(rename = "user.created")]
    UserCreated { user: User },
    #[serde(rename = "message.created")]
    MessageCreated { message: Message },
}

impl FrameEvent {
    /// Its `type`, one of [`TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            FrameEvent::UserCreated { .. } => crate::broker::USER_CREATED,
            FrameEvent::MessageCreated { .. } => crate::broker::MESSAGE_CREATED,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_are_flat_objects_with_their_type() {
        let frame = Frame {
            id: Uuid::nil(),
            occurred_at: "2026-11-27T12:00:00Z".parse().unwrap(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            event: FrameEvent::MessageCreated {
                message: Message {
                    channel: "#user".into(),
                    message: "hi".into(),
                    created_at: "2026-11-27T12:00:00Z".parse().unwrap(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            json!({
                "type": "message.created",
                "id": "00000000-0000-0000-0000-000000000000",
                "occurred_at": "2026-11-27T12:00:00Z",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "message": {"channel": "#user", "message": "hi", "created_at": "2026-11-27T12:00:00Z"}
            })
        );
        assert_eq!(frame.event.type_name(), "message.created");
    }
}
