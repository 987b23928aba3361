//! The slack service's and slack-queue's tests, against the real Redis and RabbitMQ, each with
//! a Redis key prefix and a vhost of its own.

mod helpers;

mod events;
mod https;
mod messages;
mod openapi;
mod queue;
mod resilience;
mod webhook;
