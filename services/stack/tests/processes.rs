//! The stack as separate processes, as containers run it: every service is its own binary, and
//! one `POST /user` through the gateway is one trace from the caller's context to the last
//! consumer's webhook call.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::ServiceProcess;

mod common;
use common::Environment;
mod traces;
use test_support::zipkin::{find, service};
use traces::{assert_announcement_trace, complete};

/// A binary of the workspace, built next to this test by `cargo nextest run --workspace`.
fn binary(name: &str) -> String {
    let directory: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    let path = directory.join(name);
    assert!(
        path.exists(),
        "{} is missing: build every binary with `cargo build --workspace --bins` (the README's \
         `cargo nextest run --workspace` does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

#[tokio::test]
async fn one_request_through_the_gateway_is_one_trace_across_every_process() {
    let environment = Environment::new().await;
    let common = environment.variables();
    let zipkin = &environment.zipkin;
    let mut processes: Vec<ServiceProcess> =
        ["gateway", "user", "slack", "user-queue", "slack-queue"]
            .iter()
            .map(|name| ServiceProcess::spawn(&binary(name), &common))
            .collect();
    for (process, (_, port)) in processes.iter_mut().zip(environment.ports()) {
        process
            .wait_until_ready(&format!("{}/health/ready", Environment::url(port)))
            .await;
    }
    let gateway = Environment::url(environment.gateway_port);
    let client = reqwest::Client::new();
    let token = environment.token("alice");

    let health: Value = client
        .get(format!("{gateway}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for service in ["user", "slack", "user-queue", "slack-queue"] {
        assert_eq!(health[service]["response"], "pong", "{health}");
    }

    let created = client
        .post(format!("{gateway}/user"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"name": "traced", "email": "traced@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["x-trace-id"], CALLER_TRACE);

    let spans = zipkin
        .wait_for(
            Duration::from_secs(15),
            "every span of the request",
            |spans| complete(spans, CALLER_TRACE, true),
        )
        .await;
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|span| span["traceId"] == CALLER_TRACE)
        .collect();
    let gateway_server = find(&spans, "gateway SERVER", |s| {
        s["kind"] == "SERVER" && service(s) == "gateway"
    });
    assert_eq!(
        gateway_server["parentId"], CALLER_SPAN,
        "the caller's context is continued"
    );
    assert_eq!(gateway_server["name"], "post /user");
    assert_eq!(gateway_server["tags"]["enduser.id"], "alice");
    let gateway_client = find(&spans, "gateway CLIENT", |s| {
        s["kind"] == "CLIENT" && service(s) == "gateway"
    });
    assert_eq!(gateway_client["parentId"], gateway_server["id"]);
    let user_server = assert_announcement_trace(&spans);
    assert_eq!(user_server["parentId"], gateway_client["id"]);
    assert_eq!(
        user_server["tags"]["enduser.id"], "alice",
        "the subject reaches the service"
    );
    // B3 callers are continued too, single header or multiple.
    for headers in [
        vec![("b3", format!("{CALLER_TRACE}-{CALLER_SPAN}-1"))],
        vec![
            ("X-B3-TraceId", CALLER_TRACE.to_owned()),
            ("X-B3-SpanId", CALLER_SPAN.to_owned()),
            ("X-B3-Sampled", "1".to_owned()),
        ],
    ] {
        let mut request = client
            .get(format!("{gateway}/users?limit=1"))
            .bearer_auth(&token);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-trace-id"],
            CALLER_TRACE,
            "{headers:?}"
        );
    }

    // Asynchronous creation: a 202, then the user appears where the gateway said.
    let accepted = client
        .post(format!("{gateway}/user"))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .json(&json!({"name": "queued", "email": "queued@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found: Vec<Value> = client
            .get(format!("{gateway}{location}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(user) = found.first() {
            assert_eq!(user["name"], "queued");
            break;
        }
        assert!(Instant::now() < deadline, "the queued user never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for process in &processes {
        process.terminate();
    }
    for (name, process) in ["gateway", "user", "slack", "user-queue", "slack-queue"]
        .iter()
        .zip(processes)
    {
        let exit = process.wait(Duration::from_secs(20)).await;
        assert_eq!(exit.code, Some(0), "{name}: {}", exit.stderr);
    }
    assert_eq!(zipkin.violations(), Vec::<String>::new());
}
