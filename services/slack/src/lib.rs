//! The slack service: messages per channel in Redis behind the original's API (`POST /`,
//! `GET /messages`), delivered to a Slack incoming webhook when `SLACK_WEBHOOK_URL` is set, and
//! each announced as a `message.created` event; and slack-queue, which announces each
//! `user.created` event in `#user`.

pub mod configuration;
pub mod domain;
pub mod outbox;
pub mod queue;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod webhook;

pub use configuration::{QueueSettings, Settings};

pub const SERVICE_NAME: &str = "slack";
pub const QUEUE_SERVICE_NAME: &str = "slack-queue";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
