//! Assertions on the spans one request leaves in the in-test Zipkin.

use serde_json::Value;

/// The span of `spans` that passes `test`, or a panic naming `what`.
pub fn find<'a>(spans: &'a [Value], what: &str, test: impl Fn(&Value) -> bool) -> &'a Value {
    spans
        .iter()
        .find(|span| test(span))
        .unwrap_or_else(|| panic!("no {what} in {spans:#?}"))
}

/// The service that recorded `span`.
pub fn service(span: &Value) -> &str {
    span["localEndpoint"]["serviceName"].as_str().unwrap_or("")
}

/// Asserts the part of one trace that follows the user service's SERVER span: its INSERT, the
/// PRODUCER, slack-queue's CONSUMER, the Redis LPUSH and the webhook POST, each the child of the
/// one before; returns the user SERVER span.
pub fn assert_announcement_trace(spans: &[Value]) -> &Value {
    let user = find(spans, "user SERVER", |s| {
        s["kind"] == "SERVER" && service(s) == "user"
    });
    assert_eq!(user["name"], "post /user");
    let insert = find(spans, "INSERT users", |s| s["name"] == "insert users");
    assert_eq!(insert["parentId"], user["id"]);
    let producer = find(spans, "PRODUCER", |s| s["kind"] == "PRODUCER");
    assert_eq!(producer["parentId"], user["id"]);
    let consumer = find(spans, "CONSUMER", |s| s["kind"] == "CONSUMER");
    assert_eq!(consumer["parentId"], producer["id"]);
    assert_eq!(service(consumer), "slack-queue");
    let lpush = find(spans, "redis LPUSH", |s| s["name"] == "lpush channel");
    assert_eq!(lpush["parentId"], consumer["id"]);
    let webhook = find(spans, "webhook CLIENT", |s| {
        service(s) == "slack-queue"
            && s["kind"] == "CLIENT"
            && s["tags"]["http.request.method"] == "POST"
    });
    assert_eq!(webhook["parentId"], consumer["id"]);
    user
}
