//! Routing keeps the method, path, query, body, status, content type and the services' own
//! error bodies; upstream failures become 502 and 504 problems naming the service.

use serde_json::{Value, json};

use crate::helpers::{closed, echo, failing, slow, spawn_gateway, token};

#[tokio::test]
async fn a_request_reaches_the_service_as_sent_and_its_answer_comes_back() {
    let user = echo().await;
    let gateway = spawn_gateway(&[("USER_URL", user.url.clone())]).await;
    let response = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .header("x-request-id", "req-42")
        .header("idempotency-key", "create-foo")
        .header("content-type", "application/json")
        .body(r#"{"name":"foo","email":"foo@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/user/7");
    assert_eq!(response.headers()["x-request-id"], "from-upstream");
    assert!(response.headers().contains_key("x-trace-id"));
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["uri"], "/user");
    assert_eq!(
        echoed["body"],
        r#"{"name":"foo","email":"foo@example.com"}"#
    );
    let headers = &echoed["headers"];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-request-id"], "req-42");
    assert_eq!(headers["idempotency-key"], "create-foo");
    assert_eq!(
        headers["x-enduser-id"], "alice",
        "the subject goes to the service"
    );
    assert!(
        headers["traceparent"].as_str().unwrap().starts_with("00-"),
        "{headers}"
    );
    assert!(
        headers.get("authorization").is_none(),
        "the token stays at the gateway"
    );

    let listed: Value = gateway
        .client
        .get(gateway.url("/users?limit=5&before=9"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["uri"], "/users?limit=5&before=9");
    assert_eq!(listed["method"], "GET");
}

#[tokio::test]
async fn messages_go_to_the_slack_service() {
    let slack = echo().await;
    let gateway = spawn_gateway(&[("SLACK_URL", slack.url.clone())]).await;
    let echoed: Value = gateway
        .client
        .get(gateway.url("/messages?channel=%23user"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echoed["uri"], "/messages?channel=%23user");
}

#[tokio::test]
async fn a_services_own_problem_comes_back_unchanged() {
    let user = failing(409).await;
    let gateway = spawn_gateway(&[("USER_URL", user.url.clone())]).await;
    let response = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .json(&json!({"name": "foo", "email": "taken@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["detail"], "taken");
}

#[tokio::test]
async fn upstream_failures_are_502_and_504_problems_naming_the_service() {
    let slow = slow(std::time::Duration::from_secs(3)).await;
    let gateway = spawn_gateway(&[
        ("USER_URL", closed()),
        ("SLACK_URL", slow.url.clone()),
        ("UPSTREAM_TIMEOUT_MS", "300".to_owned()),
    ])
    .await;
    let refused = gateway
        .client
        .get(gateway.url("/user/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let refused: Value = refused.json().await.unwrap();
    let late = gateway
        .client
        .get(gateway.url("/messages?channel=%23user"))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 504);
    let late: Value = late.json().await.unwrap();
    insta::assert_json_snapshot!(json!({"502": refused, "504": late}));

    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("http_client_request_duration_seconds_count{"),
        "per-upstream client metrics"
    );
    assert!(metrics.contains(r#"status="connect""#), "{metrics}");
    assert!(metrics.contains(r#"status="timeout""#), "{metrics}");
}

#[tokio::test]
async fn a_request_that_loses_its_connection_is_sent_again_only_when_that_is_harmless() {
    let user = echo().await;
    let proxy = test_support::TcpProxy::start(user.url.trim_start_matches("http://"));
    let gateway = spawn_gateway(&[("USER_URL", format!("http://{}", proxy.address()))]).await;
    let create = |key: Option<&str>| {
        let request = gateway
            .client
            .post(gateway.url("/user"))
            .bearer_auth(token("ada"))
            .json(&json!({"name": "Ada", "email": "ada@example.com"}));
        match key {
            Some(key) => request.header("idempotency-key", key),
            None => request,
        }
    };

    // The connection drops after the request reached the service, as when a stopping replica
    // closes it: a read is sent again, and so is a creation with an Idempotency-Key.
    proxy.drop_answer_to(b"GET /user/7");
    let read = gateway
        .client
        .get(gateway.url("/user/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 201, "the echo's answer came back");
    proxy.drop_answer_to(b"POST /user");
    let keyed = create(Some("5b0c7a1e-2f4d-4c1b-9a7e-3d2f1e0c9b8a"))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 201);

    // Without a key the creation may have happened: the client is told, not the service asked
    // twice.
    proxy.drop_answer_to(b"POST /user");
    let unkeyed = create(None).send().await.unwrap();
    assert_eq!(unkeyed.status(), 502);
    let problem: Value = unkeyed.json().await.unwrap();
    assert_eq!(problem["detail"], "user cannot be reached");
}
