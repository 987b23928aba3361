//! Channels and message texts: what a valid one is, parsed once at the edge.

use chrono::Utc;
use contract::InvalidField;
use contract::fields::string_field;
use contract::messages::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAX_CHANNEL_CHARS: usize = 80;
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// A channel name such as `#user`: 1 to 80 characters, no spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel(String);

impl Channel {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let channel = raw.trim();
        if channel.is_empty() {
            return Err("must not be empty".into());
        }
        if channel.chars().count() > MAX_CHANNEL_CHARS {
            return Err(format!("must be at most {MAX_CHANNEL_CHARS} characters"));
        }
        if channel.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        Ok(Self(channel.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message text: 1 to 4000 characters; line breaks and tabs are the only control
/// characters allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > MAX_MESSAGE_CHARS {
            return Err(format!("must be at most {MAX_MESSAGE_CHARS} characters"));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err("must not contain control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message to send to a channel.
// The body of `POST /`, as sent; `NewMessage::read` checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewMessage {
    /// 1 to 80 characters, no spaces.
    #[schema(example = "#user")]
    pub channel: String,
    /// 1 to 4000 characters.
    #[schema(example = "User 7 created")]
    pub message: String,
}

impl NewMessage {
    /// Reads the channel and the text of a JSON body, naming every field that is wrong.
    pub fn read(object: &Map<String, Value>) -> Result<(Channel, MessageText), Vec<InvalidField>> {
        contract::fields::both(
            string_field(object, "channel", Channel::parse),
            string_field(object, "message", MessageText::parse),
        )
    }
}

/// The message to store for `text` in `channel`, now.
pub fn new_message(channel: &Channel, text: &MessageText) -> Message {
    Message {
        channel: channel.as_str().to_owned(),
        message: text.as_str().to_owned(),
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_messages_are_bounded() {
        assert_eq!(Channel::parse(" #user ").unwrap().as_str(), "#user");
        assert!(Channel::parse("").is_err());
        assert!(Channel::parse("#two words").is_err());
        assert!(Channel::parse(&"c".repeat(81)).is_err());
        assert!(MessageText::parse("User 7 created").is_ok());
        assert!(MessageText::parse("line\nbreak 🦀").is_ok());
        assert!(MessageText::parse("  ").is_err());
        assert!(MessageText::parse("nul\0").is_err());
        assert!(MessageText::parse(&"m".repeat(4000)).is_ok());
        assert!(MessageText::parse(&"m".repeat(4001)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn channels_parse_or_explain(raw in any::<String>()) {
            if let Ok(channel) = Channel::parse(&raw) {
                let channel = channel.as_str();
                prop_assert!(!channel.is_empty() && channel.chars().count() <= MAX_CHANNEL_CHARS);
                prop_assert!(!channel.chars().any(|c| c.is_whitespace() || c.is_control()));
            }
        }

        #[test]
        fn messages_parse_or_explain(raw in any::<String>()) {
            if let Ok(message) = MessageText::parse(&raw) {
                prop_assert_eq!(message.as_str(), raw.as_str());
                prop_assert!(raw.chars().count() <= MAX_MESSAGE_CHARS && !raw.trim().is_empty());
            }
        }
    }
}
