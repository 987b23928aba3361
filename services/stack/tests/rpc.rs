//! The RPC sample end to end, on the one-process launcher: `GET /users/availability` is one
//! trace from the caller's `traceparent` through the gateway's CLIENT span, across RabbitMQ, to
//! the user service's SERVER span and its database call; and an asynchronous creation of a
//! taken email is refused at once.

use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::Environment;
use test_support::zipkin::{find, service};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn an_availability_check_is_one_trace_across_the_broker() {
    let environment = Environment::new().await;
    let stack = environment.launch(&environment.variables()).await;
    let gateway = Environment::url(environment.gateway_port);
    let client = reqwest::Client::new();
    let response = client
        .get(format!(
            "{gateway}/users/availability?email=Free%40Example.com"
        ))
        .bearer_auth(environment.token("rpc"))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-trace-id"], TRACE);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"email": "free@example.com", "available": true})
    );

    let spans = environment
        .zipkin
        .wait_for(Duration::from_secs(10), "the RPC's spans", |spans| {
            let trace: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == TRACE).collect();
            trace
                .iter()
                .any(|s| s["kind"] == "SERVER" && service(s) == "user")
                && trace.iter().any(|s| s["name"] == "select users")
                && trace
                    .iter()
                    .any(|s| s["kind"] == "SERVER" && service(s) == "gateway")
        })
        .await;
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|s| s["traceId"] == TRACE)
        .collect();
    let request = find(&spans, "the gateway's SERVER span", |s| {
        s["kind"] == "SERVER" && service(s) == "gateway"
    });
    assert_eq!(request["name"], "get /users/availability");
    assert_eq!(
        request["parentId"], "00f067aa0ba902b7",
        "the caller's context is continued"
    );
    let call = find(&spans, "the gateway's CLIENT span", |s| {
        s["kind"] == "CLIENT" && service(s) == "gateway"
    });
    assert_eq!(call["name"], "users.email_available");
    assert_eq!(call["parentId"], request["id"]);
    for (tag, value) in [
        ("rpc.system.name", "jsonrpc"),
        ("rpc.method", "users.email_available"),
        ("messaging.system", "rabbitmq"),
        ("messaging.destination.name", "user.rpc"),
    ] {
        assert_eq!(call["tags"][tag], value, "{tag}");
    }
    let conversation = call["tags"]["messaging.message.conversation_id"]
        .as_str()
        .unwrap();
    assert_eq!(conversation.len(), 32, "the correlation id");
    let server = find(&spans, "the user's SERVER span", |s| {
        s["kind"] == "SERVER" && service(s) == "user"
    });
    assert_eq!(server["name"], "users.email_available");
    assert_eq!(
        server["parentId"], call["id"],
        "the server's span is the caller's child"
    );
    assert_eq!(
        server["tags"]["messaging.message.conversation_id"],
        conversation
    );
    let query = find(&spans, "the database call", |s| s["name"] == "select users");
    assert_eq!(query["parentId"], server["id"]);
    assert_eq!(environment.zipkin.violations(), Vec::<String>::new());

    // A taken email: 409 before any command is sent, as POST /user itself would answer.
    let token = environment.token("rpc");
    let taken = "taken@example.com";
    let created = client
        .post(format!("{gateway}/user"))
        .bearer_auth(&token)
        .json(&json!({"name": "first", "email": taken}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let again = client
        .post(format!("{gateway}/user"))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .json(&json!({"name": "second", "email": "TAKEN@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:conflict");
    let unavailable = client
        .get(format!("{gateway}/users/availability?email={taken}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        unavailable.json::<Value>().await.unwrap()["available"],
        false
    );

    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}
