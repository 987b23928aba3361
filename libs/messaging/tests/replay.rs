//! `replay-dead-letters`, the documented command, against a RabbitMQ vhost of the test's own:
//! a dead letter goes back to its queue with its headers and trace context, and a fresh
//! attempt count.

use std::process::Command;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use messaging::topology::SLACK_QUEUE;
use test_support::TestVhost;
use test_support::rabbitmq::header;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn replay(vhost: &TestVhost, queue: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_replay-dead-letters"))
        .arg(queue)
        .env("AMQP_URL", vhost.amqp_url())
        .output()
        .expect("run replay-dead-letters")
}

#[tokio::test]
async fn dead_letters_go_back_to_their_queue_with_a_fresh_attempt_count() {
    let vhost = TestVhost::new().await;
    SLACK_QUEUE.declare(&vhost.channel().await).await.unwrap();
    let dead = SLACK_QUEUE.dead_letter_queue();
    for n in 0..3 {
        let mut headers = FieldTable::default();
        headers.insert("x-attempt".into(), AMQPValue::LongLongInt(5));
        headers.insert(
            "x-reason".into(),
            AMQPValue::LongString(LongString::from("gave up after 5 attempts: 503")),
        );
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(TRACEPARENT)),
        );
        let properties = BasicProperties::default()
            .with_message_id(format!("event-{n}").into())
            .with_headers(headers);
        vhost.publish("", &dead, b"{}", properties).await;
    }

    let output = replay(&vhost, SLACK_QUEUE.name);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("replayed 3 message(s) from {dead} to {}", SLACK_QUEUE.name)
    );
    assert_eq!(vhost.count(&dead).await, 0);
    for n in 0..3 {
        let message = vhost
            .get(SLACK_QUEUE.name, Duration::from_secs(5))
            .await
            .expect("back in its queue");
        assert_eq!(
            message.properties.message_id().as_ref().unwrap().as_str(),
            format!("event-{n}"),
            "in their order"
        );
        assert_eq!(header(&message, "x-attempt"), None);
        assert_eq!(
            header(&message, "x-reason").as_deref(),
            Some("gave up after 5 attempts: 503")
        );
        assert_eq!(
            header(&message, "traceparent").as_deref(),
            Some(TRACEPARENT)
        );
        assert_eq!(message.data, b"{}");
    }
}

#[tokio::test]
async fn an_unknown_queue_is_refused_with_the_known_ones() {
    let vhost = TestVhost::new().await;
    let output = replay(&vhost, "no-such-queue");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("slack-queue.user-created, user-queue.commands"),
        "{stderr}"
    );
}
