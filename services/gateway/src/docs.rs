//! The public API's OpenAPI document (`/openapi.json`) and a browsable UI of it (`/docs`). The
//! schemas are the types the routes answer: the gateway's own, and the services' from
//! `contract`, which the services answer too.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, feed, frontend, health, page, routes};

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
        routes::create_user,
        routes::get_user,
        routes::list_users,
        routes::email_availability,
        routes::list_messages,
        health::health,
        feed::events,
        page::config,
        page::development_token,
        frontend::relay,
        admin::list_faults,
        admin::replace_faults,
        admin::clear_faults
    ),
    components(schemas(
        contract::users::User,
        contract::users::NewUserFields,
        routes::Accepted,
        contract::rpc::EmailAvailability,
        contract::messages::Message,
        health::ServiceHealth,
        page::UiConfig,
        page::FrontendTracing,
        page::DevelopmentToken,
        frontend::ExportAnswer,
        contract::faults::FaultKindInfo,
        contract::faults::Fault,
        contract::faults::FaultRequest,
        contract::faults::FaultKind
    )),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;
