//! `SharedPublisher`: request handlers share one confirmed publisher, and a publish waits for
//! its own confirm only, never for another caller's; after the broker goes away the next
//! publish connects again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use messaging::{Outgoing, SharedPublishError, SharedPublisher};
use test_support::{TcpProxy, TestVhost};

const QUEUE: &str = "shared.publisher";

fn publisher(url: String) -> SharedPublisher {
    SharedPublisher::new(
        url,
        Arc::new(|channel| {
            Box::pin(async move {
                channel
                    .queue_declare(
                        QUEUE.into(),
                        lapin::options::QueueDeclareOptions::default(),
                        lapin::types::FieldTable::default(),
                    )
                    .await
                    .map(drop)
            })
        }),
    )
}

fn broker() -> String {
    std::env::var("TEST_RABBITMQ_ADDRESS").unwrap_or_else(|_| "127.0.0.1:5672".to_owned())
}

#[tokio::test]
async fn concurrent_publishes_wait_for_their_own_confirms_not_for_each_other() {
    let vhost = TestVhost::new().await;
    let proxy = TcpProxy::start(&broker());
    let publisher = publisher(vhost.amqp_url_via(&proxy.address().to_string()));
    publisher
        .publish(Outgoing::new("", QUEUE, "warm-up", b"{}"))
        .await
        .unwrap();
    // Every answer of the broker now takes 200 ms: twenty publishes one after the other would
    // take four seconds.
    proxy.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    let ids: Vec<String> = (0..20).map(|n| format!("message-{n}")).collect();
    let outcomes = join_all(
        ids.iter()
            .map(|id| publisher.publish(Outgoing::new("", QUEUE, id, b"{}"))),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "twenty concurrent publishes took {elapsed:?}: they waited for each other"
    );
    assert_eq!(vhost.count(QUEUE).await, 21);
}

#[tokio::test]
async fn after_the_broker_goes_away_the_next_publish_connects_again() {
    let vhost = TestVhost::new().await;
    let proxy = TcpProxy::start(&broker());
    let publisher = publisher(vhost.amqp_url_via(&proxy.address().to_string()));
    publisher
        .publish(Outgoing::new("", QUEUE, "first", b"{}"))
        .await
        .unwrap();
    proxy.cut();
    let failed = publisher
        .publish(Outgoing::new("", QUEUE, "during", b"{}"))
        .await;
    assert!(
        matches!(
            failed,
            Err(SharedPublishError::Publish(_) | SharedPublishError::Unreachable(_))
        ),
        "{failed:?}"
    );
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = publisher
            .publish(Outgoing::new("", QUEUE, "after", b"{}"))
            .await;
        if outcome.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected: {outcome:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
