//! A message of a channel, as the slack service stores and answers it and as the gateway
//! documents it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A message of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    #[schema(example = "#user")]
    pub channel: String,
    #[schema(example = "User ada@example.com created")]
    pub message: String,
    pub created_at: DateTime<Utc>,
}
