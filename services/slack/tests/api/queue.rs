//! slack-queue: each `user.created` event becomes one "User <email> created" in `#user`, inside
//! a CONSUMER span that continues the producer's trace; failures are retried, then
//! dead-lettered; malformed events go straight to the dead-letter queue.

use std::time::{Duration, Instant};

use contract::events::UserCreated;
use contract::users::User;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Value, json};
use test_support::rabbitmq::header;
use test_support::{FakeWebhook, TcpProxy, ZipkinReceiver};

use crate::helpers::{Options, Process, TestSlack, spawn};

const DEAD: &str = "slack-queue.user-created.dead";
const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

fn user_created(email: &str) -> UserCreated {
    UserCreated::new(
        uuid::Uuid::new_v4(),
        User {
            id: 7,
            name: "Ada".into(),
            email: email.into(),
            created_at: chrono::Utc::now(),
        },
    )
}

/// Publishes `body` as the outbox relay would, with a producer's trace context.
async fn publish(slack: &TestSlack, body: &[u8], message_id: &str) {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(format!(
            "00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"
        ))),
    );
    slack
        .vhost
        .publish(
            "users",
            "user.created",
            body,
            BasicProperties::default()
                .with_message_id(message_id.into())
                .with_headers(headers),
        )
        .await;
}

async fn publish_event(slack: &TestSlack, event: &UserCreated) {
    publish(
        slack,
        &serde_json::to_vec(event).unwrap(),
        &event.id.to_string(),
    )
    .await;
}

/// Waits until `#user` holds `count` messages (and a little longer, to catch extras).
async fn wait_for_messages(slack: &TestSlack, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let messages = slack.channel("#user").await;
        if messages.len() >= count {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return slack.channel("#user").await;
        }
        assert!(
            Instant::now() < deadline,
            "only {messages:?} in #user after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_user_created_event_is_announced_once_in_a_span_continuing_the_producers_trace() {
    let zipkin = ZipkinReceiver::start();
    let slack = spawn(
        Process::Queue,
        Options {
            zipkin: Some(zipkin.endpoint()),
            ..Options::default()
        },
    )
    .await;
    let event = user_created("ada@example.com");
    publish_event(&slack, &event).await;
    assert_eq!(
        wait_for_messages(&slack, 1).await,
        ["User ada@example.com created"]
    );
    slack.stop().await;

    assert_eq!(zipkin.violations(), Vec::<String>::new());
    let spans = zipkin.trace(PRODUCER_TRACE);
    let consumer = spans
        .iter()
        .find(|span| span["kind"] == "CONSUMER")
        .unwrap_or_else(|| panic!("no CONSUMER span in {spans:#?}"));
    assert_eq!(consumer["name"], "process user.created");
    assert_eq!(consumer["parentId"], PRODUCER_SPAN);
    assert_eq!(consumer["localEndpoint"]["serviceName"], "slack-queue");
    assert_eq!(
        consumer["tags"]["messaging.message.id"],
        event.id.to_string()
    );
    let redis = spans
        .iter()
        .find(|span| span["name"] == "lpush channel")
        .unwrap_or_else(|| panic!("no redis span in {spans:#?}"));
    assert_eq!(redis["kind"], "CLIENT");
    assert_eq!(redis["parentId"], consumer["id"]);
    assert_eq!(redis["tags"]["db.system.name"], "redis");
}

/// Binds a queue of the test's own to the `message.created` events.
async fn observe_announcements(slack: &TestSlack) {
    slack
        .vhost
        .observe(
            ANNOUNCEMENTS,
            "messages",
            lapin::ExchangeKind::Topic,
            "message.created",
        )
        .await;
}

const ANNOUNCEMENTS: &str = "test.announcements";

/// The next `message.created` slack-queue published, with its message id.
async fn next_announcement(slack: &TestSlack) -> (Value, String) {
    let published = slack
        .vhost
        .get(ANNOUNCEMENTS, Duration::from_secs(10))
        .await
        .expect("a message.created event");
    let id = published
        .delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    (
        serde_json::from_slice(&published.delivery.data).unwrap(),
        id,
    )
}

#[tokio::test]
async fn each_announcement_is_published_as_message_created_by_slack_queue_in_the_events_trace() {
    let zipkin = ZipkinReceiver::start();
    let slack = spawn(
        Process::Queue,
        Options {
            zipkin: Some(zipkin.endpoint()),
            ..Options::default()
        },
    )
    .await;
    observe_announcements(&slack).await;
    let event = user_created("announced@example.com");
    publish_event(&slack, &event).await;
    let (announcement, message_id) = next_announcement(&slack).await;
    assert_eq!(announcement["type"], "message.created");
    assert_eq!(announcement["message"]["channel"], "#user");
    assert_eq!(
        announcement["message"]["message"],
        "User announced@example.com created"
    );
    assert_eq!(announcement["id"], message_id.as_str());
    // The stored message is the one announced.
    assert_eq!(
        wait_for_messages(&slack, 1).await,
        ["User announced@example.com created"]
    );
    slack.stop().await;

    let spans = zipkin.trace(PRODUCER_TRACE);
    let consumer = spans
        .iter()
        .find(|span| span["kind"] == "CONSUMER")
        .unwrap_or_else(|| panic!("no CONSUMER span in {spans:#?}"));
    let producer = spans
        .iter()
        .find(|span| span["kind"] == "PRODUCER")
        .unwrap_or_else(|| panic!("no PRODUCER span in {spans:#?}"));
    assert_eq!(producer["localEndpoint"]["serviceName"], "slack-queue");
    assert_eq!(
        producer["parentId"], consumer["id"],
        "published while handled"
    );
    assert_eq!(
        producer["tags"]["messaging.message.id"],
        message_id.as_str()
    );
}

#[tokio::test]
async fn a_redelivered_event_announces_the_same_message_created_again() {
    let slack = spawn(Process::Queue, Options::default()).await;
    observe_announcements(&slack).await;
    let event = user_created("again@example.com");
    publish_event(&slack, &event).await;
    let (first, first_id) = next_announcement(&slack).await;
    publish_event(&slack, &event).await;
    let (again, again_id) = next_announcement(&slack).await;
    assert_eq!(again, first, "the same event, the message as first stored");
    assert_eq!(again_id, first_id);
    publish_event(&slack, &user_created("other@example.com")).await;
    let (other, _) = next_announcement(&slack).await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(
        wait_for_messages(&slack, 2).await.len(),
        2,
        "stored once each"
    );
}

#[tokio::test]
async fn an_announcement_told_to_slack_is_one_redis_round_trip_in_its_trace() {
    let zipkin = ZipkinReceiver::start();
    let webhook = FakeWebhook::start(&[], 200);
    let slack = spawn(
        Process::Queue,
        Options {
            zipkin: Some(zipkin.endpoint()),
            webhook: Some(webhook.url()),
            ..Options::default()
        },
    )
    .await;
    publish_event(&slack, &user_created("once@example.com")).await;
    wait_for_messages(&slack, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook.delivered().is_empty() {
        assert!(Instant::now() < deadline, "Slack was never told");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slack.stop().await;
    let redis: Vec<Value> = zipkin
        .trace(PRODUCER_TRACE)
        .into_iter()
        .filter(|span| span["tags"]["db.system.name"] == "redis")
        .collect();
    assert_eq!(
        redis.len(),
        1,
        "stored and claimed in one script, the note sent with the next: {redis:#?}"
    );
}

#[tokio::test]
async fn a_redelivered_event_is_announced_once() {
    let webhook = FakeWebhook::start(&[], 200);
    let slack = spawn(
        Process::Queue,
        Options {
            webhook: Some(webhook.url()),
            ..Options::default()
        },
    )
    .await;
    let event = user_created("twice@example.com");
    publish_event(&slack, &event).await;
    publish_event(&slack, &event).await;
    publish_event(&slack, &user_created("other@example.com")).await;
    let messages = wait_for_messages(&slack, 2).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(webhook.delivered().len(), 2, "one delivery per event");
}

#[tokio::test]
async fn malformed_messages_go_straight_to_the_dead_letter_queue() {
    let slack = spawn(Process::Queue, Options::default()).await;
    for (case, body) in [
        ("not JSON", b"User 7 created".to_vec()),
        (
            "wrong shape",
            json!({"id": 7, "user": "ada"}).to_string().into_bytes(),
        ),
        ("wrong type", {
            let mut event = serde_json::to_value(user_created("x@example.com")).unwrap();
            event["type"] = "user.deleted".into();
            serde_json::to_vec(&event).unwrap()
        }),
    ] {
        publish(&slack, &body, "poison").await;
        let dead = slack
            .vhost
            .get(DEAD, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{case}: not dead-lettered"));
        assert_eq!(dead.delivery.data, body, "{case}");
        assert_eq!(
            header(&dead, "x-attempt").as_deref(),
            Some("1"),
            "{case}: not retried"
        );
        assert!(header(&dead, "x-reason").is_some(), "{case}");
    }
    // The consumer goes on.
    publish_event(&slack, &user_created("after@example.com")).await;
    assert_eq!(
        wait_for_messages(&slack, 1).await,
        ["User after@example.com created"]
    );
}

#[tokio::test]
async fn a_webhook_that_fails_twice_then_succeeds_gets_one_delivery() {
    let webhook = FakeWebhook::start(&[502, 503], 200);
    let slack = spawn(
        Process::Queue,
        Options {
            webhook: Some(webhook.url()),
            ..Options::default()
        },
    )
    .await;
    publish_event(&slack, &user_created("flaky@example.com")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while webhook.delivered().is_empty() {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        webhook.delivered(),
        [json!({"text": "User flaky@example.com created", "channel": "#user"})]
    );
    assert_eq!(slack.channel("#user").await.len(), 1);
    assert_eq!(slack.vhost.count(DEAD).await, 0);
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_sends_the_event_to_the_dead_letter_queue_after_n_tries() {
    let webhook = FakeWebhook::start(&[], 503);
    let slack = spawn(
        Process::Queue,
        Options {
            webhook: Some(webhook.url()),
            max_attempts: Some(3),
            ..Options::default()
        },
    )
    .await;
    let event = user_created("failing@example.com");
    publish_event(&slack, &event).await;
    let dead = slack
        .vhost
        .get(DEAD, Duration::from_secs(15))
        .await
        .expect("dead-lettered after its attempts");
    assert_eq!(header(&dead, "x-attempt").as_deref(), Some("3"));
    assert!(
        header(&dead, "x-reason")
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    assert_eq!(
        webhook.calls(),
        9,
        "three consumer attempts of three calls each (SLACK_WEBHOOK_ATTEMPTS)"
    );
    assert_eq!(
        slack.channel("#user").await.len(),
        1,
        "stored once in Redis all the same"
    );
}

#[tokio::test]
async fn a_webhook_that_refuses_sends_the_event_to_the_dead_letter_queue_at_once() {
    let webhook = FakeWebhook::start(&[], 400);
    let slack = spawn(
        Process::Queue,
        Options {
            webhook: Some(webhook.url()),
            max_attempts: Some(3),
            ..Options::default()
        },
    )
    .await;
    publish_event(&slack, &user_created("refused@example.com")).await;
    let dead = slack
        .vhost
        .get(DEAD, Duration::from_secs(15))
        .await
        .expect("dead-lettered");
    assert_eq!(
        header(&dead, "x-attempt").as_deref(),
        Some("1"),
        "a refusal is never retried"
    );
    assert_eq!(
        header(&dead, "x-reason").as_deref(),
        Some("Slack refused the message with 400 Bad Request")
    );
    assert_eq!(webhook.calls(), 1, "one call: Slack will never take it");
    assert_eq!(slack.channel("#user").await.len(), 1, "stored all the same");
}

#[tokio::test]
async fn redis_down_means_retries_and_no_message_is_lost() {
    let proxy = TcpProxy::start("127.0.0.1:6379");
    let slack = spawn(
        Process::Queue,
        Options {
            redis_url: Some(format!("redis://{}", proxy.address())),
            max_attempts: Some(50),
            ..Options::default()
        },
    )
    .await;
    proxy.cut();
    publish_event(&slack, &user_created("patient@example.com")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(slack.channel("#user").await.is_empty());
    proxy.restore();
    assert_eq!(
        wait_for_messages(&slack, 1).await,
        ["User patient@example.com created"]
    );
    assert_eq!(slack.vhost.count(DEAD).await, 0);
}

#[tokio::test]
async fn the_consumer_reconnects_after_losing_the_broker() {
    let proxy = TcpProxy::start("127.0.0.1:5672");
    let slack = spawn(
        Process::Queue,
        Options {
            amqp_address: Some(proxy.address().to_string()),
            ..Options::default()
        },
    )
    .await;
    publish_event(&slack, &user_created("before@example.com")).await;
    assert_eq!(wait_for_messages(&slack, 1).await.len(), 1);

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slack.get("/health/ready").await.status() == 200 {
        assert!(
            Instant::now() < deadline,
            "readiness never noticed the lost broker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Published straight to the broker while the consumer is cut off: it waits in the queue.
    publish_event(&slack, &user_created("during@example.com")).await;
    proxy.restore();
    let messages = wait_for_messages(&slack, 2).await;
    assert_eq!(
        messages,
        [
            "User during@example.com created",
            "User before@example.com created"
        ]
    );
}
