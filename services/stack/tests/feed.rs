//! The live feed end to end, on the one-process launcher: a user created through the gateway
//! reaches every connected client with the trace id of its request, and so does its
//! announcement in `#user`; a message posted to slack arrives as `message.created` with its
//! own; and the trace of the creation holds the gateway's CONSUMER span and the frame it sent.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::FeedClient;
use test_support::zipkin::{find, service};

mod common;
use common::Environment;

const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const POSTED: &str = "6bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_feed_carries_each_event_with_the_trace_of_the_request_that_caused_it() {
    let environment = Environment::new().await;
    let stack = environment.launch(&environment.variables()).await;
    let gateway = Environment::url(environment.gateway_port);
    let mut first = FeedClient::connect(&gateway, &environment.token("feed"), "").await;
    let mut second =
        FeedClient::connect(&gateway, &environment.token("feed"), "?types=user.created").await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{gateway}/user"))
        .bearer_auth(environment.token("feed"))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({"name": "Live", "email": "live@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.unwrap();

    let frame = second.frames(1, Duration::from_secs(1)).await.remove(0);
    assert_eq!(frame["type"], "user.created");
    assert_eq!(frame["trace_id"], TRACE);
    assert_eq!(frame["user"], user);
    // The first client also gets the announcement slack-queue stored, in the same trace.
    let frames = first.frames(2, Duration::from_secs(10)).await;
    let types: Vec<&str> = frames
        .iter()
        .map(|frame| frame["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"user.created") && types.contains(&"message.created"),
        "{types:?}"
    );
    for frame in &frames {
        assert_eq!(frame["trace_id"], TRACE, "{frame}");
    }
    let announcement = frames
        .iter()
        .find(|frame| frame["type"] == "message.created")
        .unwrap();
    assert_eq!(announcement["message"]["channel"], "#user");
    assert_eq!(
        announcement["message"]["message"],
        "User live@example.com created"
    );

    let posted = client
        .post(format!("{}/", Environment::url(environment.slack_port)))
        .header("traceparent", format!("00-{POSTED}-00f067aa0ba902b7-01"))
        .json(&json!({"channel": "#ops", "message": "deployed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    let frame = first.frames(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(frame["type"], "message.created");
    assert_eq!(frame["trace_id"], POSTED);
    assert_eq!(frame["message"]["message"], "deployed");

    // The creation's trace ends at the WebSocket push: the gateway's CONSUMER span is the
    // child of the user service's PRODUCER, and each frame sent the child of that CONSUMER.
    let spans = environment
        .zipkin
        .wait_for(Duration::from_secs(10), "the feed's spans", |spans| {
            let has = |name: &str| {
                spans
                    .iter()
                    .any(|s| s["traceId"] == TRACE && s["name"] == name)
            };
            // Each process exports on its own clock.
            has("publish user.created") && has("process user.created") && has("send user.created")
        })
        .await;
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|s| s["traceId"] == TRACE)
        .collect();
    let producer = find(&spans, "the PRODUCER of user.created", |s| {
        s["kind"] == "PRODUCER" && s["name"] == "publish user.created"
    });
    let consumer = find(&spans, "the gateway's CONSUMER", |s| {
        s["kind"] == "CONSUMER" && service(s) == "gateway" && s["name"] == "process user.created"
    });
    assert_eq!(consumer["parentId"], producer["id"]);
    let sent = find(&spans, "a frame sent", |s| s["name"] == "send user.created");
    assert_eq!(sent["parentId"], consumer["id"]);
    assert_eq!(sent["tags"]["messaging.destination.name"], "/ws/events");
    assert_eq!(environment.zipkin.violations(), Vec::<String>::new());

    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_each_get_every_user_of_a_burst_of_two_hundred() {
    let environment = Environment::new().await;
    let mut variables = environment.variables();
    variables.push(("RATE_LIMIT_PER_SECOND", "100000".into()));
    variables.push(("RATE_LIMIT_BURST", "100000".into()));
    // What is measured is delivery, not latency: on a slow machine a debug build's request can
    // wait seconds behind the 100,000 frames sent beside it.
    variables.push(("UPSTREAM_TIMEOUT_MS", "60000".into()));
    // Keep-alive has tests of its own. One test process reading 500 sockets on a busy machine
    // can read a ping late enough to be closed as idle.
    variables.push(("WS_PING_INTERVAL_MS", "600000".into()));
    // The 500 clients are one client, the test process.
    variables.push(("WS_MAX_CONNECTIONS_PER_CLIENT", "500".into()));
    let stack = environment.launch(&variables).await;
    let gateway = Environment::url(environment.gateway_port);
    let watcher = environment.token("feed");
    let mut clients = futures_util::future::join_all(
        (0..500).map(|_| FeedClient::connect(&gateway, &watcher, "?types=user.created")),
    )
    .await;
    let client = reqwest::Client::new();
    let token = environment.token("burst");
    // Sixteen at a time, as a busy client would send them (not two hundred at once), while
    // the clients read, as real ones do: one that reads nothing for the feed's send timeout is
    // closed as stuck, which a slow machine would reach.
    let burst = futures_util::stream::iter((0..200).map(|n| {
        let (client, gateway, token) = (&client, &gateway, &token);
        async move {
            let response = client
                .post(format!("{gateway}/user"))
                .bearer_auth(token)
                .json(&json!({"name": format!("burst {n}"), "email": format!("burst-{n}@example.com")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<i64>>();
    let reads = futures_util::future::join_all(clients.iter_mut().map(|client| async move {
        let mut ids: Vec<i64> = client
            .frames(200, Duration::from_secs(90))
            .await
            .iter()
            .map(|frame| frame["user"]["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }));
    let (mut expected, received) = tokio::join!(burst, reads);
    expected.sort_unstable();
    for (n, ids) in received.iter().enumerate() {
        assert_eq!(ids, &expected, "client {n} did not get every user once");
    }
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}
