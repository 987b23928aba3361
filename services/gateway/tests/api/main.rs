//! The gateway's tests: against fake services it can route to (and the real RabbitMQ for
//! asynchronous creation), each test with a gateway of its own.

mod helpers;

mod async_creation;
mod auth;
mod availability;
mod faults;
mod feed;
mod health;
mod limits;
mod routing;
