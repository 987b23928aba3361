//! Postgres going away and coming back, through a proxy this test alone controls.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::TcpProxy;

use crate::helpers::{Options, spawn_app_with, unique_email};

fn postgres_proxy() -> TcpProxy {
    TcpProxy::start("127.0.0.1:5432")
}

#[tokio::test]
async fn postgres_down_is_503_and_the_service_recovers_by_itself() {
    let proxy = postgres_proxy();
    let app = spawn_app_with(Options {
        postgres_server: Some(format!("postgres://postgres@{}", proxy.address())),
        ..Options::default()
    })
    .await;
    app.create_user("before", &unique_email()).await;

    proxy.cut();
    let response = app
        .post_user(&json!({"name": "during", "email": unique_email()}))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:dependency-unavailable");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    assert_eq!(app.get("/health/live").await.status(), 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app
            .post_user(&json!({"name": "after", "email": unique_email()}))
            .await;
        if response.status() == 201 {
            break;
        }
        assert_eq!(response.status(), 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["after", "before"], "the failed request left no row");
}

#[tokio::test]
async fn start_up_waits_for_postgres() {
    let proxy = postgres_proxy();
    proxy.cut();
    let started = Instant::now();
    let restore_after = Duration::from_millis(1500);
    let server = format!("postgres://postgres@{}", proxy.address());
    let (app, ()) = tokio::join!(
        spawn_app_with(Options {
            postgres_server: Some(server),
            ..Options::default()
        }),
        async {
            tokio::time::sleep(restore_after).await;
            proxy.restore();
        }
    );
    assert!(started.elapsed() >= restore_after);
    app.create_user("patient", &unique_email()).await;
}
