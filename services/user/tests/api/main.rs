//! The user service's tests, against the real Postgres, each with a database of its own.

mod helpers;

mod metrics;
mod problems;
mod process;
mod resilience;
mod traces;
mod users;
