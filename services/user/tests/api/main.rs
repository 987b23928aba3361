//! The user service's tests, against the real Postgres, each with a database of its own.

mod helpers;

mod commands;
mod events;
mod idempotency;
mod metrics;
mod openapi;
mod problems;
mod process;
mod resilience;
mod rpc;
mod traces;
mod users;
