//! Postgres going away and coming back, through a proxy this test alone controls.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::TcpProxy;

use crate::helpers::{Options, TestApp, spawn_app_with, unique_email};

fn postgres_proxy() -> TcpProxy {
    TcpProxy::start("127.0.0.1:5432")
}

/// The service reaching Postgres through `proxy`, retrying lost writes for `retry_budget`
/// (none by default).
async fn spawn_behind(proxy: &TcpProxy, retry_budget: Option<Duration>) -> TestApp {
    spawn_app_with(Options {
        postgres_server: Some(format!("postgres://postgres@{}", proxy.address())),
        retry_budget,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn postgres_down_is_503_and_the_service_recovers_by_itself() {
    let proxy = postgres_proxy();
    let app = spawn_behind(&proxy, None).await;
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

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_answered_201_with_one_user_and_one_event() {
    let proxy = postgres_proxy();
    let app = spawn_behind(&proxy, Some(Duration::from_secs(5))).await;
    let email = unique_email();
    // The statement that stores the user and its event reaches Postgres and commits; its
    // answer does not come back. Only that statement's parameters carry the email.
    proxy.drop_answer_to(email.as_bytes());
    let response = app
        .post_user(&json!({"name": "lost answer", "email": email}))
        .await;
    assert_eq!(response.status(), 201, "the retry found the committed row");
    let created: Value = response.json().await.unwrap();
    let (users, events) = app.stored(&email).await;
    assert_eq!(
        users,
        [created["id"].as_i64().unwrap()],
        "one user, the one answered"
    );
    assert_eq!(events, 1, "one event");
    app.stop().await;
}

#[tokio::test]
async fn without_retries_a_lost_answer_is_a_503_for_a_stored_user() {
    // Why the retry exists: the answer says "unavailable", yet the user was stored.
    let proxy = postgres_proxy();
    let app = spawn_behind(&proxy, None).await;
    let email = unique_email();
    proxy.drop_answer_to(email.as_bytes());
    let response = app
        .post_user(&json!({"name": "lost answer", "email": email}))
        .await;
    assert_eq!(response.status(), 503);
    // The write may still be committing when the 503 is out (a plain look-up would race it;
    // a retry's INSERT waits for it on the unique index).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (users, events) = app.stored(&email).await;
        if (users.len(), events) == (1, 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write whose answer was lost did not commit: {users:?}, {events} event(s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn with_an_idempotency_key_the_client_retrying_after_that_503_gets_its_user() {
    // The gap the retry budget leaves (Postgres away longer than it), closed by the client.
    let proxy = postgres_proxy();
    let app = spawn_behind(&proxy, None).await;
    let email = unique_email();
    let body = json!({"name": "lost answer", "email": email});
    proxy.drop_answer_to(email.as_bytes());
    let first = app.post_user_keyed(&body, "retry-me", None).await;
    assert_eq!(first.status(), 503);
    let retried = app.post_user_keyed(&body, "retry-me", None).await;
    assert_eq!(
        retried.status(),
        201,
        "the retry found the user its key created"
    );
    let created: Value = retried.json().await.unwrap();
    let (users, events) = app.stored(&email).await;
    assert_eq!(users, [created["id"].as_i64().unwrap()]);
    assert_eq!(events, 1);
    app.stop().await;
}
