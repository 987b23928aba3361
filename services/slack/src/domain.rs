//! Channels and messages: what a valid one is, parsed once at the edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// A message as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredMessage {
    #[schema(example = "#user")]
    pub channel: String,
    #[schema(example = "User 7 created")]
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /`, for the API document (the handler reads it field by field, to report
/// every failing field).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NewMessageBody {
    /// 1 to 80 characters, no spaces.
    #[schema(example = "#user")]
    channel: String,
    /// 1 to 4000 characters.
    #[schema(example = "User 7 created")]
    message: String,
}

/// The answer of `POST /`, for the API document: the stored message and what became of its
/// delivery to Slack.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PostedMessage {
    #[schema(example = "#user")]
    channel: String,
    #[schema(example = "User 7 created")]
    message: String,
    created_at: DateTime<Utc>,
    /// `sent`, `skipped` (no webhook configured), `rejected` or `failed`.
    #[schema(example = "skipped")]
    slack: String,
}

impl StoredMessage {
    pub fn new(channel: &Channel, message: &MessageText) -> Self {
        Self {
            channel: channel.as_str().to_owned(),
            message: message.as_str().to_owned(),
            created_at: Utc::now(),
        }
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
