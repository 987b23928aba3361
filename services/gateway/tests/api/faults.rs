//! `/admin/faults`: who may use it, what it accepts, that a fault expires by itself, and that
//! a gateway route fault strikes its route and nothing else (not even the switch itself).

use std::time::Duration;

use serde_json::{Value, json};
use test_support::TestRedis;

use crate::helpers::{TestGateway, closed, echo, spawn_gateway, token};

fn admin() -> String {
    let claims = contract::tokens::Claims::new(
        "operator",
        crate::helpers::AUDIENCE,
        Duration::from_secs(300),
    )
    .with_roles(&[contract::tokens::ADMIN_ROLE]);
    contract::tokens::sign(&claims, crate::helpers::SECRET)
}

/// A gateway whose fault set is a key of `redis`'s, in front of an echoing user service.
async fn gateway(
    redis: &TestRedis,
    extra: &[(&str, String)],
) -> (TestGateway, crate::helpers::Fake) {
    let user = echo().await;
    let mut overrides = vec![
        ("FAULTS_KEY", format!("{}faults", redis.prefix())),
        ("USER_URL", user.url.clone()),
    ];
    overrides.extend(extra.iter().cloned());
    (spawn_gateway(&overrides).await, user)
}

async fn put(gateway: &TestGateway, bearer: &str, body: Value) -> reqwest::Response {
    gateway
        .client
        .put(gateway.url("/admin/faults"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn listed(gateway: &TestGateway) -> Vec<Value> {
    let response = gateway
        .client
        .get(gateway.url("/admin/faults"))
        .bearer_auth(admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn only_an_admin_may_see_or_change_the_faults() {
    let redis = TestRedis::new().await;
    let (gateway, _user) = gateway(&redis, &[]).await;
    let anonymous = gateway
        .anonymous
        .get(gateway.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let writer = put(&gateway, &token("alice"), json!([])).await;
    assert_eq!(writer.status(), 403);
    let problem: Value = writer.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:forbidden");
    let deleted = gateway
        .client
        .delete(gateway.url("/admin/faults"))
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403);
    assert_eq!(listed(&gateway).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_fault_set_is_put_listed_cleared_and_every_broken_rule_named() {
    let redis = TestRedis::new().await;
    let (gateway, _user) = gateway(&redis, &[]).await;
    let invalid = put(
        &gateway,
        &admin(),
        json!([
            {"kind": "database"},
            {"kind": "latency", "service": "user"},
            {"kind": "error", "service": "nobody", "status": 200}
        ]),
    )
    .await;
    assert_eq!(invalid.status(), 400);
    let problem: Value = invalid.json().await.unwrap();
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["#/1/delay_ms", "#/2/service", "#/2/status"]);
    let malformed = put(&gateway, &admin(), json!({"kind": "database"})).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        listed(&gateway).await,
        Vec::<Value>::new(),
        "nothing was stored"
    );

    let stored = put(
        &gateway,
        &admin(),
        json!([{"kind": "rpc_timeout", "probability": 0.5, "ttl_seconds": 60}]),
    )
    .await;
    assert_eq!(stored.status(), 200);
    let stored: Vec<Value> = stored.json().await.unwrap();
    assert_eq!(stored[0]["services"], json!(["user"]));
    assert_eq!(stored[0]["probability"], 0.5);
    assert_eq!(listed(&gateway).await, stored);

    let cleared = gateway
        .client
        .delete(gateway.url("/admin/faults"))
        .bearer_auth(admin())
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert_eq!(listed(&gateway).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_route_fault_strikes_its_route_only_and_ends_by_itself() {
    let redis = TestRedis::new().await;
    let (gateway, _user) = gateway(&redis, &[]).await;
    // Every route of the gateway fails, for 2 s.
    let stored = put(
        &gateway,
        &admin(),
        json!([
            {"kind": "error", "service": "gateway", "status": 503, "ttl_seconds": 2},
            {"kind": "latency", "service": "user", "route": "GET /user/{id}", "delay_ms": 500}
        ]),
    )
    .await;
    assert_eq!(stored.status(), 200);
    let struck = gateway
        .client
        .get(gateway.url("/user/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(struck.status(), 503);
    let problem: Value = struck.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:fault-injected");
    // The switch is not one of the routes it strikes, and the user service's fault is not the
    // gateway's.
    assert_eq!(listed(&gateway).await.len(), 2);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let healed = gateway
        .client
        .get(gateway.url("/user/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(healed.status(), 201, "the echo answers again");
    assert!(started.elapsed() < Duration::from_secs(3));
    let left = listed(&gateway).await;
    assert_eq!(left.len(), 1, "the expired fault is gone: {left:?}");

    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"faults_injected_total{service="gateway",kind="error"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_faults_enabled_there_is_no_switch_and_without_redis_a_503() {
    let redis = TestRedis::new().await;
    let (off, _user) = gateway(&redis, &[("FAULTS_ENABLED", "false".into())]).await;
    let absent = off
        .client
        .get(off.url("/admin/faults"))
        .bearer_auth(admin())
        .send()
        .await
        .unwrap();
    assert_eq!(absent.status(), 404);

    let unreachable = closed().replace("http://", "redis://");
    let (cut, _user) = gateway(&redis, &[("REDIS_URL", unreachable)]).await;
    let answer = put(&cut, &admin(), json!([{"kind": "database"}])).await;
    assert_eq!(answer.status(), 503);
    // Nothing strikes, and the gateway serves on.
    let served = cut.client.get(cut.url("/user/7")).send().await.unwrap();
    assert_eq!(served.status(), 201);
}
