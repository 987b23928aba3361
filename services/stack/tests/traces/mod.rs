//! Assertions on the spans one request leaves in the in-test Zipkin.

use serde_json::Value;
use test_support::zipkin::{find, service};

/// Asserts the part of one trace that follows the user service's SERVER span: its INSERT, the
/// PRODUCER of `user.created`, slack-queue's CONSUMER, and under it the Redis script, the
/// PRODUCER of the announcement's `message.created` and the webhook POST; returns the user
/// SERVER span.
pub fn assert_announcement_trace(spans: &[Value]) -> &Value {
    let user = find(spans, "user SERVER", |s| {
        s["kind"] == "SERVER" && service(s) == "user"
    });
    assert_eq!(user["name"], "post /user");
    let insert = find(spans, "INSERT users", |s| s["name"] == "insert users");
    assert_eq!(insert["parentId"], user["id"]);
    let producer = find(spans, "the PRODUCER of user.created", |s| {
        s["kind"] == "PRODUCER" && s["name"] == "publish user.created"
    });
    assert_eq!(producer["parentId"], user["id"]);
    // slack-queue's (the gateway's live feed consumes the event too).
    let consumer = find(spans, "slack-queue's CONSUMER", |s| {
        s["kind"] == "CONSUMER"
            && s["tags"]["messaging.destination.subscription.name"] == "slack-queue.user-created"
    });
    assert_eq!(consumer["parentId"], producer["id"]);
    assert_eq!(service(consumer), "slack-queue");
    let lpush = find(spans, "redis LPUSH", |s| s["name"] == "lpush channel");
    assert_eq!(lpush["parentId"], consumer["id"]);
    let announced = find(spans, "the PRODUCER of message.created", |s| {
        s["kind"] == "PRODUCER" && s["name"] == "publish message.created"
    });
    assert_eq!(announced["parentId"], consumer["id"]);
    assert_eq!(service(announced), "slack-queue");
    let webhook = find(spans, "webhook CLIENT", |s| {
        service(s) == "slack-queue"
            && s["kind"] == "CLIENT"
            && s["tags"]["http.request.method"] == "POST"
    });
    assert_eq!(webhook["parentId"], consumer["id"]);
    user
}

/// Whether every span of one `POST /user` (through the gateway when `through_gateway`) has
/// reached the receiver: each process exports on its own clock, so the last to arrive is not
/// always the last made.
pub fn complete(spans: &[Value], trace: &str, through_gateway: bool) -> bool {
    let spans: Vec<&Value> = spans
        .iter()
        .filter(|span| span["traceId"] == trace)
        .collect();
    let has = |test: &dyn Fn(&Value) -> bool| spans.iter().any(|span| test(span));
    let gateway = !through_gateway
        || (has(&|s| s["kind"] == "SERVER" && service(s) == "gateway")
            && has(&|s| s["kind"] == "CLIENT" && service(s) == "gateway"));
    gateway
        && has(&|s| s["kind"] == "SERVER" && service(s) == "user")
        && has(&|s| s["name"] == "insert users")
        && has(&|s| s["name"] == "publish user.created")
        && has(&|s| s["name"] == "publish message.created")
        && has(&|s| s["kind"] == "CONSUMER")
        && has(&|s| s["name"] == "lpush channel")
        && has(&|s| {
            service(s) == "slack-queue"
                && s["kind"] == "CLIENT"
                && s["tags"]["http.request.method"] == "POST"
        })
}
