//! The `user` binary as a process: graceful SIGTERM with the last spans flushed, JSON logs that
//! carry the trace id, and configuration errors that name their variable.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::{ServiceProcess, TestDatabase, TestVhost, ZipkinReceiver, free_port};

use crate::helpers::unique_email;

/// Starts the binary on a free port against `database`; returns it and its base URL.
async fn start(
    database: &TestDatabase,
    vhost: &TestVhost,
    envs: &[(&str, String)],
) -> (ServiceProcess, String) {
    let port = free_port();
    let mut all = vec![
        ("LISTEN_HOST", "127.0.0.1".to_owned()),
        ("USER_PORT", port.to_string()),
        ("DATABASE_URL", database.url()),
        ("AMQP_URL", vhost.amqp_url()),
    ];
    all.extend(envs.iter().cloned());
    let mut process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_user"), &all);
    let base = format!("http://127.0.0.1:{port}");
    process
        .wait_until_ready(&format!("{base}/health/ready"))
        .await;
    (process, base)
}

async fn post_user(base: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/user"))
        .json(&json!({"name": "last words", "email": unique_email()}))
        .send()
        .await
        .unwrap();
    let trace = response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), trace)
}

/// A request made just before SIGTERM still reaches Zipkin, also on a one-worker runtime
/// (where a provider shutdown is known to hang if it waits on the runtime it blocks).
#[tokio::test]
async fn sigterm_flushes_the_spans_of_the_last_request() {
    for workers in ["1", "2"] {
        let zipkin = ZipkinReceiver::start();
        let database = TestDatabase::new().await;
        let vhost = TestVhost::new().await;
        let (process, base) = start(
            &database,
            &vhost,
            &[
                ("OTEL_TRACES_EXPORTER", "zipkin".into()),
                ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
                ("TOKIO_WORKER_THREADS", workers.into()),
            ],
        )
        .await;
        let (status, trace) = post_user(&base).await;
        assert_eq!(status, 201);
        process.terminate();
        let exit = process.wait(Duration::from_secs(20)).await;
        assert_eq!(exit.code, Some(0), "{workers} workers: {}", exit.stderr);
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
    let vhost = TestVhost::new().await;
    let (process, base) = start(
        &database,
        &vhost,
        &[
            ("LOG_FORMAT", "json".into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
        ],
    )
    .await;
    let (_, trace) = post_user(&base).await;
    process.terminate();
    let exit = process.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0));
    let lines: Vec<Value> = exit
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let created = lines
        .iter()
        .find(|line| line["message"] == "user created")
        .unwrap_or_else(|| panic!("no 'user created' line in {}", exit.stdout));
    assert_eq!(created["trace_id"], trace);
    assert_eq!(created["span_id"].as_str().unwrap().len(), 16);
    assert_eq!(created["level"], "INFO");
    assert_eq!(created["service"], "user");
}

#[test]
fn an_unknown_setting_is_a_start_up_error_naming_the_variable() {
    for (variable, value) in [
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_PROPAGATORS", "xray"),
        ("USER_PORT", "eighty"),
        ("TOKIO_WORKER_THREADS", "0"),
        ("TOKIO_WORKER_THREADS", "many"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_user"))
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
        assert!(!stderr.contains("panicked"), "{variable}={value}: {stderr}");
    }
}
