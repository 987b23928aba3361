//! The stack's contract: what crosses a process boundary, in one place, so that a producer and
//! its consumers, or a service and the gateway that documents it, cannot drift apart.
//!
//! - [`users`]: what a valid user is (name, email, idempotency key) and the user as every API
//!   and event carries it;
//! - [`messages`]: a message of a channel, as the slack service keeps it;
//! - [`events`] and [`commands`]: the messages on the broker;
//! - [`rpc`]: the JSON-RPC calls the user service answers over the broker;
//! - [`feed`]: the frames of the gateway's live feed;
//! - [`faults`]: the faults switched on at run time, and where each kind strikes;
//! - [`broker`]: the names of exchanges, routing keys, queues and message headers;
//! - [`headers`]: the HTTP headers the processes give each other meaning by;
//! - [`tokens`]: the bearer tokens the gateway accepts.
//!
//! It knows no HTTP or AMQP framework: serde types, parsers and names only (plus the
//! `utoipa` schema of each type, so the API documents describe the very types sent).

pub mod broker;
pub mod commands;
pub mod events;
pub mod faults;
pub mod feed;
pub mod fields;
pub mod frontend;
pub mod headers;
pub mod messages;
pub mod rpc;
pub mod tokens;
pub mod users;

pub use fields::InvalidField;
