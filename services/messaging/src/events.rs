//! The wire types that cross RabbitMQ, shared by producers and consumers so they cannot drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The user as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// `user.created`: published once a user row is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The event id, also the AMQP `message_id`: consumers deduplicate on it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub user: UserSnapshot,
}

impl UserCreated {
    pub const KIND: &'static str = "user.created";

    pub fn new(user: UserSnapshot) -> Self {
        Self {
            id: Uuid::new_v4(),
            kind: Self::KIND.to_owned(),
            occurred_at: Utc::now(),
            user,
        }
    }
}

/// `create_user`: asks user-queue to create a user, as `POST /user` would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// The command id, also the AMQP `message_id`.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub email: String,
}

impl CreateUser {
    pub const KIND: &'static str = "create_user";

    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id: Uuid::new_v4(),
            kind: Self::KIND.to_owned(),
            name: name.into(),
            email: email.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_created_event_has_a_stable_shape() {
        let event = UserCreated {
            id: Uuid::nil(),
            kind: UserCreated::KIND.into(),
            occurred_at: "2026-11-27T12:00:00.123456Z".parse().unwrap(),
            user: UserSnapshot {
                id: 7,
                name: "Ada".into(),
                email: "ada@example.com".into(),
                created_at: "2026-11-27T12:00:00.1Z".parse().unwrap(),
            },
        };
        insta::assert_json_snapshot!(event);
        let parsed: UserCreated =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(parsed, event);
    }

    #[test]
    fn the_create_user_command_has_a_stable_shape() {
        let command = CreateUser {
            id: Uuid::nil(),
            ..CreateUser::new("Ada", "ada@example.com")
        };
        insta::assert_json_snapshot!(command);
    }
}
