//! Test helpers shared by the crates of the workspace (a dev-dependency only): in-test trace
//! receivers that speak Zipkin's v2 JSON API and OTLP/HTTP, the rules every Zipkin span must
//! satisfy, and a Postgres database per test.

pub mod otlp;
pub mod postgres;
pub mod process;
pub mod proxy;
mod server;
pub mod zipkin;

pub use otlp::{OtlpReceiver, OtlpSpan};
pub use postgres::TestDatabase;
pub use process::{ServiceProcess, free_port};
pub use proxy::TcpProxy;
pub use zipkin::ZipkinReceiver;
