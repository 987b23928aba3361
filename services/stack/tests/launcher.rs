//! The one-process launcher: every service on its port, each exporting spans under its own
//! name and serving its own metrics, all stopped cleanly by one SIGTERM.

use std::time::Duration;

use serde_json::json;
use test_support::{ServiceProcess, TestDatabase, ZipkinReceiver, free_port};

#[tokio::test]
async fn the_launcher_runs_every_service_and_stops_them_on_sigterm() {
    let zipkin = ZipkinReceiver::start();
    let database = TestDatabase::new().await;
    let user_port = free_port();
    let mut stack = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_stack"),
        &[
            ("LISTEN_HOST", "127.0.0.1".into()),
            ("USER_PORT", user_port.to_string()),
            ("DATABASE_URL", database.url()),
            ("OTEL_TRACES_EXPORTER", "zipkin".into()),
            ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
            // Ignored by the launcher: each service keeps its own name.
            ("OTEL_SERVICE_NAME", "everything".into()),
        ],
    );
    let user = format!("http://127.0.0.1:{user_port}");
    stack
        .wait_until_ready(&format!("{user}/health/ready"))
        .await;

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{user}/user"))
        .json(&json!({"name": "launched", "email": "launched@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let metrics = client
        .get(format!("{user}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"build_info{service="user""#),
        "{metrics}"
    );

    stack.terminate();
    let exit = stack.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert!(
        exit.stdout
            .contains(&format!("user         http://localhost:{user_port}")),
        "{}",
        exit.stdout
    );
    assert!(
        exit.stdout
            .contains("traces go to Zipkin http://127.0.0.1:")
    );

    let spans = zipkin.spans();
    let server = spans
        .iter()
        .find(|span| span["name"] == "post /user")
        .expect("the request's span was exported");
    assert_eq!(server["localEndpoint"]["serviceName"], "user");
    assert_eq!(zipkin.violations(), Vec::<String>::new());
}
