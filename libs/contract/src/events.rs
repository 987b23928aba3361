//! The events on the broker, as producers publish and consumers read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::messages::Message;
use crate::users::User;

/// The `type` of a [`UserCreated`]: `"user.created"`, and nothing else deserializes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserCreatedType {
    #[default]
    #[serde(rename = "user.created")]
    UserCreated,
}

/// `user.created`: published once a user row is committed, to [`crate::broker::USERS_EXCHANGE`]
/// with routing key [`crate::broker::USER_CREATED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The event id, also the AMQP `message_id`: consumers deduplicate on it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: UserCreatedType,
    /// When the user was created.
    pub occurred_at: DateTime<Utc>,
    pub user: User,
}

impl UserCreated {
    /// The event of `user`'s creation, whose id is `id`.
    pub fn new(id: Uuid, user: User) -> Self {
        Self {
            id,
            event_type: UserCreatedType::UserCreated,
            occurred_at: user.created_at,
            user,
        }
    }
}

/// The `type` of a [`MessageCreated`]: `"message.created"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageCreatedType {
    #[default]
    #[serde(rename = "message.created")]
    MessageCreated,
}

/// `message.created`: published for every message the slack service stores (its own `POST /`
/// and slack-queue's announcements), to [`crate::broker::MESSAGES_EXCHANGE`] with routing key
/// [`crate::broker::MESSAGE_CREATED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCreated {
    /// The event id, also the AMQP `message_id`.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: MessageCreatedType,
    /// When the message was stored.
    pub occurred_at: DateTime<Utc>,
    pub message: Message,
}

impl MessageCreated {
    /// The event of `message`'s storing, with a fresh id.
    pub fn new(message: Message) -> Self {
        Self::with_id(Uuid::new_v4(), message)
    }

    /// The event of the announcement of `cause` (a user's creation, say) in `message`: its id
    /// is derived from `cause`'s, so every delivery of `cause` announces the same event, and
    /// consumers deduplicate it as one.
    pub fn announcing(cause: Uuid, message: Message) -> Self {
        Self::with_id(
            Uuid::new_v5(&cause, crate::broker::MESSAGE_CREATED.as_bytes()),
            message,
        )
    }

    fn with_id(id: Uuid, message: Message) -> Self {
        Self {
            id,
            event_type: MessageCreatedType::MessageCreated,
            occurred_at: message.created_at,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_created_event_has_a_stable_shape() {
        let mut event = UserCreated::new(
            Uuid::nil(),
            User {
                id: 7,
                name: "Ada".into(),
                email: "ada@example.com".into(),
                created_at: "2026-11-27T12:00:00.1Z".parse().unwrap(),
            },
        );
        event.occurred_at = "2026-11-27T12:00:00.123456Z".parse().unwrap();
        insta::assert_json_snapshot!(event);
        let parsed: UserCreated =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(parsed, event);
    }

    #[test]
    fn the_message_created_event_has_a_stable_shape() {
        let mut event = MessageCreated::new(Message {
            channel: "#user".into(),
            message: "User ada@example.com created".into(),
            created_at: "2026-11-27T12:00:00.1Z".parse().unwrap(),
        });
        event.id = Uuid::nil();
        insta::assert_json_snapshot!(event);
    }

    #[test]
    fn an_announcement_has_the_same_id_for_the_same_cause_and_another_for_another() {
        let message = Message {
            channel: "#user".into(),
            message: "User ada@example.com created".into(),
            created_at: Utc::now(),
        };
        let cause = Uuid::new_v4();
        let first = MessageCreated::announcing(cause, message.clone());
        assert_eq!(
            first.id,
            MessageCreated::announcing(cause, message.clone()).id
        );
        assert_ne!(first.id, cause);
        assert_ne!(
            first.id,
            MessageCreated::announcing(Uuid::new_v4(), message).id
        );
    }

    #[test]
    fn another_type_is_not_a_user_created_event() {
        let mut event = serde_json::to_value(UserCreated::new(
            Uuid::nil(),
            User {
                id: 7,
                name: "Ada".into(),
                email: "ada@example.com".into(),
                created_at: Utc::now(),
            },
        ))
        .unwrap();
        event["type"] = "user.deleted".into();
        assert!(serde_json::from_value::<UserCreated>(event).is_err());
    }
}
