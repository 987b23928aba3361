//! The `user` binary as a process: graceful SIGTERM with the last spans flushed, JSON logs that
//! carry the trace id, and configuration errors that name their variable.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{TestDatabase, ZipkinReceiver};

use crate::helpers::unique_email;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    base: String,
}

impl Process {
    fn spawn(database: &TestDatabase, envs: &[(&str, String)]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_user"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_HOST", "127.0.0.1")
            .env("USER_PORT", port.to_string())
            .env("DATABASE_URL", database.url())
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the user binary starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_until_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the user binary did not become ready");
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit, at most 20 s; returns the exit code and standard output.
    async fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                for line in BufReader::new(self.child.stdout.take().unwrap()).lines() {
                    out.push_str(&line.unwrap());
                    out.push('\n');
                }
                return (status.code(), out);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the user binary did not exit within 20 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn post_user(base: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/user"))
        .json(&json!({"name": "last words", "email": unique_email()}))
        .send()
        .await
        .unwrap()
}

/// A request made just before SIGTERM still reaches Zipkin, also on a one-worker runtime
/// (where a provider shutdown is known to hang if it waits on the runtime it blocks).
#[tokio::test]
async fn sigterm_flushes_the_spans_of_the_last_request() {
    for workers in ["1", "2"] {
        let zipkin = ZipkinReceiver::start();
        let database = TestDatabase::new().await;
        let process = Process::spawn(
            &database,
            &[
                ("OTEL_TRACES_EXPORTER", "zipkin".into()),
                ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
                ("TOKIO_WORKER_THREADS", workers.into()),
            ],
        );
        process.wait_until_ready().await;
        let response = post_user(&process.base).await;
        assert_eq!(response.status(), 201);
        let trace = response.headers()[telemetry::TRACE_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        process.terminate();
        let (code, _) = process.wait().await;
        assert_eq!(code, Some(0), "a clean exit on SIGTERM ({workers} workers)");
        let spans = zipkin.trace(&trace);
        assert!(
            spans.iter().any(|span| span["name"] == "post /user"),
            "the last request's span was lost ({workers} workers): {spans:#?}"
        );
        assert_eq!(zipkin.violations(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id_of_their_request() {
    let database = TestDatabase::new().await;
    let process = Process::spawn(
        &database,
        &[
            ("LOG_FORMAT", "json".into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
        ],
    );
    process.wait_until_ready().await;
    let response = post_user(&process.base).await;
    let trace = response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    process.terminate();
    let (code, out) = process.wait().await;
    assert_eq!(code, Some(0));
    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let created = lines
        .iter()
        .find(|line| line["message"] == "user created")
        .unwrap_or_else(|| panic!("no 'user created' line in {out}"));
    assert_eq!(created["trace_id"], trace);
    assert_eq!(created["span_id"].as_str().unwrap().len(), 16);
    assert_eq!(created["level"], "INFO");
}

#[tokio::test]
async fn an_unknown_setting_is_a_start_up_error_naming_the_variable() {
    for (variable, value) in [
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_PROPAGATORS", "xray"),
        ("USER_PORT", "eighty"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_user"))
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}
