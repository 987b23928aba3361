//! The gateway: the public API of the stack. It routes `/user*` to the user service and
//! `/messages` to the slack service, aggregates every process's health in `/health`, sends
//! asynchronous user creations to user-queue, authenticates writes with a bearer JWT, limits
//! each client's rate, answers CORS preflights for a browser frontend, and switches faults on
//! and off for the whole stack (`/admin/faults`).

pub mod admin;
pub mod app;
pub mod auth;
pub mod client;
pub mod configuration;
pub mod docs;
pub mod feed;
pub mod frontend;
pub mod health;
pub mod origin;
pub mod page;
pub mod proxy;
pub mod rate_limit;
pub mod routes;
pub mod state;

pub use configuration::Settings;

pub const SERVICE_NAME: &str = "gateway";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
