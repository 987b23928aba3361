//! The user as the API returns it. What a valid name and email are is shared with the gateway
//! and user-queue, in [`messaging::users`].

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use messaging::users::NewUser;

/// A stored user, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    #[schema(example = 7)]
    pub id: i64,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /user`, for the API document. The handler reads it field by field (see
/// [`NewUser::from_json`]) so that every failing field is reported, not just the first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NewUserBody {
    /// 1 to 100 characters, no control characters; trimmed.
    #[schema(example = "Ada Lovelace")]
    name: String,
    /// `local@domain.tld`, at most 254 characters; unique whatever its case.
    #[schema(example = "ada@example.com")]
    email: String,
}
