//! The commands on the broker.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::users::NewUserFields;

/// The `type` of a [`CreateUser`]: `"create_user"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateUserType {
    #[default]
    #[serde(rename = "create_user")]
    CreateUser,
}

/// `create_user`: asks user-queue to create a user, as `POST /user` would. Published to
/// [`crate::broker::USER_COMMANDS_EXCHANGE`] with routing key [`crate::broker::CREATE_USER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// The command id, also the AMQP `message_id` and the id of the user's event, so a command
    /// delivered twice creates its user once. A publisher that sends none gets a fresh one.
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    #[serde(rename = "type")]
    pub command_type: CreateUserType,
    #[serde(flatten)]
    pub user: NewUserFields,
}

impl CreateUser {
    /// A command with a fresh id.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            id: Uuid::new_v4(),
            command_type: CreateUserType::CreateUser,
            user: NewUserFields {
                name: name.into(),
                email: email.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_user_command_has_a_stable_shape() {
        let command = CreateUser {
            id: Uuid::nil(),
            ..CreateUser::new("Ada", "ada@example.com")
        };
        insta::assert_json_snapshot!(command);
        let parsed: CreateUser =
            serde_json::from_str(&serde_json::to_string(&command).unwrap()).unwrap();
        assert_eq!(parsed, command);
    }

    #[test]
    fn a_command_without_an_id_gets_one() {
        let command: CreateUser =
            serde_json::from_str(r#"{"type":"create_user","name":"Ada","email":"a@b.cd"}"#)
                .unwrap();
        assert!(!command.id.is_nil());
    }
}
