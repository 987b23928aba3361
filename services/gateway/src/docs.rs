//! The public API's OpenAPI document (`/openapi.json`) and a browsable UI of it (`/docs`).
//! The schemas describe what the services answer through the gateway; the gateway does not
//! depend on the services' crates, so they are written here, and the API test checks them
//! against the running stack.

use chrono::{DateTime, Utc};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A user.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct User {
    #[schema(example = 7)]
    id: i64,
    #[schema(example = "Ada Lovelace")]
    name: String,
    #[schema(example = "ada@example.com")]
    email: String,
    created_at: DateTime<Utc>,
}

/// The body of `POST /user`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewUser {
    /// 1 to 100 characters.
    #[schema(example = "Ada Lovelace")]
    name: String,
    /// Unique, whatever its case.
    #[schema(example = "ada@example.com")]
    email: String,
}

/// The answer to an asynchronous creation.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    command_id: uuid::Uuid,
    #[schema(example = "accepted")]
    status: String,
    /// Where the user will appear: `/users?email=...`.
    #[schema(example = "/users?email=ada%40example.com")]
    result: String,
}

/// A message of a channel.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Message {
    #[schema(example = "#user")]
    channel: String,
    #[schema(example = "User ada@example.com created")]
    message: String,
    created_at: DateTime<Utc>,
}

/// One service's answer in `/health`: `response` when it answered, `error` when not.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ServiceHealth {
    /// Milliseconds the check took.
    #[schema(example = 3)]
    time: u64,
    #[schema(example = "pong")]
    response: Option<String>,
    #[schema(example = "connection refused")]
    error: Option<String>,
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 (or RS256) JWT with `aud` = JWT_AUDIENCE; mint a development one with \
                         `cargo run -p gateway --bin mint-token`",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "microservice-stack",
        description = "The public API of the stack, served by the gateway. Errors are RFC 9457 problem details; every response carries its trace id in `x-trace-id`."
    ),
    paths(
        crate::app::create_user,
        crate::app::get_user,
        crate::app::list_users,
        crate::app::list_messages,
        crate::health::health
    ),
    components(schemas(User, NewUser, Accepted, Message, ServiceHealth)),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;
