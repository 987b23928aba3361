//! Test helpers shared by the crates of the workspace (a dev-dependency only): in-test trace
//! receivers that speak Zipkin's v2 JSON API and OTLP/HTTP, the rules every Zipkin span must
//! satisfy, a database, a vhost and a Redis key prefix per test, a proxy to cut a dependency, a
//! balancer routing to ready replicas as a Kubernetes Service does,
//! a fake Slack webhook, and a runner for service binaries.

pub mod balancer;
pub mod feed;
pub mod openapi;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod rabbitmq;
pub mod redis;
mod server;
pub mod tls;
pub mod webhook;
pub mod zipkin;

pub use balancer::Balancer;
pub use feed::FeedClient;
pub use otlp::{OtlpLog, OtlpReceiver, OtlpSpan};
pub use postgres::TestDatabase;
pub use process::{InProcess, ServiceProcess, Stopped, free_port, wait_until_ready};
pub use proxy::TcpProxy;
pub use rabbitmq::TestVhost;
pub use redis::TestRedis;
pub use tls::TestCa;
pub use webhook::FakeWebhook;
pub use zipkin::ZipkinReceiver;
