//! What the stack's end-to-end tests share: a private environment for a whole stack (its own
//! database, vhost, Redis prefix, ports, trace receiver and fake Slack webhook), and the
//! variables that point every process at it.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use test_support::{
    FakeWebhook, ServiceProcess, TestDatabase, TestRedis, TestVhost, ZipkinReceiver, free_port,
};

pub const JWT_SECRET: &str = "stack-test-secret-of-at-least-32-bytes";

pub struct Environment {
    pub zipkin: ZipkinReceiver,
    pub webhook: FakeWebhook,
    pub database: TestDatabase,
    pub vhost: TestVhost,
    pub redis: TestRedis,
    pub gateway_port: u16,
    pub user_port: u16,
    pub slack_port: u16,
    pub user_queue_port: u16,
    pub slack_queue_port: u16,
}

impl Environment {
    pub async fn new() -> Self {
        Self {
            zipkin: ZipkinReceiver::start(),
            webhook: FakeWebhook::start(&[], 200),
            database: TestDatabase::new().await,
            vhost: TestVhost::new().await,
            redis: TestRedis::new().await,
            gateway_port: free_port(),
            user_port: free_port(),
            slack_port: free_port(),
            user_queue_port: free_port(),
            slack_queue_port: free_port(),
        }
    }

    pub fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// Every port, with the name its process has.
    pub fn ports(&self) -> [(&'static str, u16); 5] {
        [
            ("gateway", self.gateway_port),
            ("user", self.user_port),
            ("slack", self.slack_port),
            ("user-queue", self.user_queue_port),
            ("slack-queue", self.slack_queue_port),
        ]
    }

    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LISTEN_HOST", "127.0.0.1".into()),
            ("GATEWAY_PORT", self.gateway_port.to_string()),
            ("USER_PORT", self.user_port.to_string()),
            ("SLACK_PORT", self.slack_port.to_string()),
            ("USER_QUEUE_PORT", self.user_queue_port.to_string()),
            ("SLACK_QUEUE_PORT", self.slack_queue_port.to_string()),
            ("USER_URL", Self::url(self.user_port)),
            ("SLACK_URL", Self::url(self.slack_port)),
            ("USER_QUEUE_URL", Self::url(self.user_queue_port)),
            ("SLACK_QUEUE_URL", Self::url(self.slack_queue_port)),
            ("DATABASE_URL", self.database.url()),
            ("AMQP_URL", self.vhost.amqp_url()),
            ("REDIS_KEY_PREFIX", self.redis.prefix().to_owned()),
            ("FAULTS_KEY", format!("{}faults", self.redis.prefix())),
            ("SLACK_WEBHOOK_URL", self.webhook.url()),
            ("JWT_SECRET", JWT_SECRET.into()),
            ("OTEL_TRACES_EXPORTER", "zipkin".into()),
            ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", self.zipkin.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ]
    }

    /// The one-process launcher with `variables` (usually [`Environment::variables`] and some
    /// of the test's own), once every process in it answers ready.
    pub async fn launch(&self, variables: &[(&str, String)]) -> ServiceProcess {
        let mut stack = ServiceProcess::spawn(env!("CARGO_BIN_EXE_stack"), variables);
        for (_, port) in self.ports() {
            stack
                .wait_until_ready(&format!("{}/health/ready", Self::url(port)))
                .await;
        }
        stack
    }

    pub fn token(&self, subject: &str) -> String {
        contract::tokens::mint(
            JWT_SECRET,
            subject,
            contract::tokens::DEFAULT_AUDIENCE,
            Duration::from_secs(300),
        )
    }
}

/// The variables a process reads, learnt by letting it read an empty environment.
fn reads(read: impl Fn(&dyn Fn(&str) -> Option<String>)) -> BTreeSet<String> {
    let names = Mutex::new(BTreeSet::new());
    read(&|name: &str| {
        names.lock().unwrap().insert(name.to_owned());
        None
    });
    names.into_inner().unwrap()
}

/// What every process reads (telemetry and how it runs), and what each reads of its own: a
/// deployment file may set only these.
pub fn variables_read() -> (BTreeSet<String>, BTreeMap<&'static str, BTreeSet<String>>) {
    let mut shared = reads(|lookup| drop(telemetry::TelemetryConfig::from_lookup(lookup)));
    shared.extend(reads(|lookup| {
        drop(service_kit::launch::ProcessSettings::from_lookup(&lookup))
    }));
    let services = [
        (
            "gateway",
            reads(|lookup| drop(gateway::Settings::from_lookup(&lookup))),
        ),
        (
            "user",
            reads(|lookup| drop(user::Settings::from_lookup(&lookup))),
        ),
        (
            "user-queue",
            reads(|lookup| drop(user::QueueSettings::from_lookup(&lookup))),
        ),
        (
            "slack",
            reads(|lookup| drop(slack::Settings::from_lookup(&lookup))),
        ),
        (
            "slack-queue",
            reads(|lookup| drop(slack::QueueSettings::from_lookup(&lookup))),
        ),
    ]
    .into_iter()
    .collect();
    (shared, services)
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tool` with `args` in the repository, panicking with its output (or with how to
/// `install` it) unless it succeeds.
pub fn run(tool: &str, install: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .current_dir(repository())
        .output()
        .unwrap_or_else(|error| panic!("{tool} cannot run ({error}); install it with `{install}`"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}
