//! The stack the scenarios run against: the one at `BDD_GATEWAY_URL` when it is given, or else
//! one the suite starts itself — one `stack` launcher process with a database, a RabbitMQ vhost
//! and a Redis key prefix of its own, every process on a free port, its spans going to an
//! in-test Zipkin receiver and its Slack messages to a fake webhook.

use std::path::{Path, PathBuf};

use reqwest::Url;
use test_support::{
    FakeWebhook, ServiceProcess, TestDatabase, TestRedis, TestVhost, ZipkinReceiver, free_port,
};

use super::Target;
use super::traces::Traces;

/// A stack started by the suite, stopped and cleaned away when dropped.
pub struct StartedStack {
    // Declared first, so dropped first: the processes stop before their stores go away.
    _launcher: ServiceProcess,
    _database: TestDatabase,
    _vhost: TestVhost,
    _redis: TestRedis,
    _webhook: FakeWebhook,
}

/// The running stack named by the environment, or a stack started here (kept running as long
/// as the returned [`StartedStack`] lives).
pub async fn reach_or_start() -> (Target, Option<StartedStack>) {
    match std::env::var("BDD_GATEWAY_URL") {
        Ok(gateway) => (running(&gateway), None),
        Err(_) => {
            let (target, started) = start().await;
            (target, Some(started))
        }
    }
}

fn running(gateway: &str) -> Target {
    Target {
        gateway: Url::parse(gateway).unwrap_or_else(|error| {
            panic!("BDD_GATEWAY_URL={gateway} is not a URL ({error}); e.g. http://127.0.0.1:8100")
        }),
        jwt_secret: std::env::var("BDD_JWT_SECRET")
            .unwrap_or_else(|_| contract::tokens::DEVELOPMENT_SECRET.to_owned()),
        traces: std::env::var("BDD_ZIPKIN_URL").map_or(Traces::NotGiven, Traces::Zipkin),
    }
}

fn loopback(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `target/debug/stack`, beside the directory of this test's own executable
/// (`target/debug/deps`).
fn launcher_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the path of the test executable");
    let binary = test
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps")
        .join("stack");
    assert!(
        binary.is_file(),
        "{} is missing: the BDD suite starts the stack with it. Build it with \
         `cargo build -p stack`, or give a running stack with BDD_GATEWAY_URL.",
        binary.display()
    );
    binary
}

async fn start() -> (Target, StartedStack) {
    let binary = launcher_binary();
    let zipkin = ZipkinReceiver::start();
    let webhook = FakeWebhook::start(&[], 200);
    let database = TestDatabase::new().await;
    let vhost = TestVhost::new().await;
    let redis = TestRedis::new().await;
    let jwt_secret = format!("bdd-{}", uuid::Uuid::new_v4().simple());
    let [gateway, user, slack, user_queue, slack_queue] = std::array::from_fn(|_| free_port());
    let variables: Vec<(&str, String)> = vec![
        ("LISTEN_HOST", "127.0.0.1".into()),
        ("GATEWAY_PORT", gateway.to_string()),
        ("USER_PORT", user.to_string()),
        ("SLACK_PORT", slack.to_string()),
        ("USER_QUEUE_PORT", user_queue.to_string()),
        ("SLACK_QUEUE_PORT", slack_queue.to_string()),
        ("USER_URL", loopback(user)),
        ("SLACK_URL", loopback(slack)),
        ("USER_QUEUE_URL", loopback(user_queue)),
        ("SLACK_QUEUE_URL", loopback(slack_queue)),
        ("DATABASE_URL", database.url()),
        ("AMQP_URL", vhost.amqp_url()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("SLACK_WEBHOOK_URL", webhook.url()),
        ("JWT_SECRET", jwt_secret.clone()),
        ("OTEL_TRACES_EXPORTER", "zipkin".into()),
        ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
    ];
    let mut launcher = ServiceProcess::spawn(
        binary.to_str().expect("a UTF-8 path to the launcher"),
        &variables,
    );
    for port in [gateway, user, slack, user_queue, slack_queue] {
        launcher
            .wait_until_ready(&format!("{}/health/ready", loopback(port)))
            .await;
    }
    let target = Target {
        gateway: Url::parse(&loopback(gateway)).expect("a loopback URL"),
        jwt_secret,
        traces: Traces::Received(zipkin),
    };
    let started = StartedStack {
        _launcher: launcher,
        _database: database,
        _vhost: vhost,
        _redis: redis,
        _webhook: webhook,
    };
    (target, started)
}
