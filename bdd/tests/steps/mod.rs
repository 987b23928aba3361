//! The steps of the features, one module per subject.

mod answers;
mod auth;
mod health;
mod tracing;
mod users;
