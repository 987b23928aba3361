//! The outbox relay against the real RabbitMQ, over an outbox held in memory: a batch is removed
//! only once the broker confirmed every event of it, and given back whole otherwise; two relays
//! on one outbox publish each event once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::ExchangeKind;
use messaging::relay::{
    Backlog, Claimed, Destination, Meter, Outbox, OutboxError, Pending, RelaySettings,
};
use messaging::topology::ExchangeType;
use test_support::TestVhost;

const EXCHANGE: &str = "test.events";
const ROUTING_KEY: &str = "test.created";
const OBSERVER: &str = "test.observer";

/// The events of an outbox in memory, and what was done with them.
#[derive(Default)]
struct Shelf {
    pending: Vec<String>,
    claimed: BTreeMap<usize, Vec<String>>,
    next_claim: usize,
    removed: Vec<String>,
    given_back: usize,
}

#[derive(Clone, Default)]
struct MemoryOutbox(Arc<Mutex<Shelf>>);

impl MemoryOutbox {
    fn with(events: impl IntoIterator<Item = String>) -> Self {
        let outbox = Self::default();
        outbox.shelf().pending.extend(events);
        outbox
    }

    fn shelf(&self) -> std::sync::MutexGuard<'_, Shelf> {
        self.0.lock().unwrap()
    }
}

struct NoMeter;

impl Meter for NoMeter {
    async fn backlog(&self) -> Result<Backlog, OutboxError> {
        Ok(Backlog {
            pending: 0,
            oldest: Duration::ZERO,
        })
    }
}

impl Outbox for MemoryOutbox {
    type Claim = usize;
    type Meter = NoMeter;

    fn destination(&self) -> Destination {
        Destination {
            exchange: EXCHANGE,
            exchange_type: ExchangeType::Topic,
            routing_key: ROUTING_KEY,
            mandatory: true,
        }
    }

    fn meter(&self) -> NoMeter {
        NoMeter
    }

    async fn claim(&mut self, max: usize) -> Result<Claimed<usize>, OutboxError> {
        let mut shelf = self.shelf();
        if shelf.pending.is_empty() {
            return Ok(None);
        }
        let count = max.min(shelf.pending.len());
        let taken: Vec<String> = shelf.pending.drain(..count).collect();
        let claim = shelf.next_claim;
        shelf.next_claim += 1;
        shelf.claimed.insert(claim, taken.clone());
        let events = taken
            .into_iter()
            .map(|id| Pending {
                body: format!(r#"{{"id":"{id}"}}"#).into_bytes(),
                id,
                trace: opentelemetry::Context::new(),
            })
            .collect();
        Ok(Some((claim, events)))
    }

    async fn remove(&mut self, claim: usize) -> Result<(), OutboxError> {
        let mut shelf = self.shelf();
        let events = shelf.claimed.remove(&claim).unwrap();
        shelf.removed.extend(events);
        Ok(())
    }

    async fn give_back(&mut self, claim: usize) -> Result<(), OutboxError> {
        let mut shelf = self.shelf();
        let events = shelf.claimed.remove(&claim).unwrap();
        shelf.pending.splice(0..0, events);
        shelf.given_back += 1;
        Ok(())
    }

    async fn wait(&mut self, poll_interval: Duration) {
        tokio::time::sleep(poll_interval.min(Duration::from_millis(20))).await;
    }
}

fn settings(vhost: &TestVhost) -> RelaySettings {
    RelaySettings {
        amqp_url: vhost.amqp_url(),
        batch: 10,
        poll_interval: Duration::from_millis(50),
    }
}

/// Runs `relays` relays on `outbox` until `done` holds, for at most 20 s; then stops them.
async fn relay_until(
    vhost: &TestVhost,
    outbox: &MemoryOutbox,
    relays: usize,
    done: impl Fn(&Shelf) -> bool,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running: Vec<_> = (0..relays)
        .map(|_| {
            tokio::spawn(messaging::relay::run(
                outbox.clone(),
                settings(vhost),
                service_kit::serve::stopped(stopped.clone()),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&outbox.shelf()) {
        assert!(
            Instant::now() < deadline,
            "the relay did not finish in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    for relay in running {
        relay.await.unwrap();
    }
}

async fn published(vhost: &TestVhost) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(message) = vhost.get(OBSERVER, Duration::from_millis(300)).await {
        let event: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn two_relays_publish_every_event_once_and_remove_each_batch_once_confirmed() {
    let vhost = TestVhost::new().await;
    vhost
        .observe(OBSERVER, EXCHANGE, ExchangeKind::Topic, ROUTING_KEY)
        .await;
    let events: Vec<String> = (0..95).map(|n| format!("event-{n:03}")).collect();
    let outbox = MemoryOutbox::with(events.clone());
    relay_until(&vhost, &outbox, 2, |shelf| shelf.removed.len() == 95).await;
    let mut ids = published(&vhost).await;
    ids.sort();
    assert_eq!(ids, events, "every event once");
    let shelf = outbox.shelf();
    assert!(shelf.pending.is_empty() && shelf.claimed.is_empty());
    assert_eq!(shelf.given_back, 0);
}

#[tokio::test]
async fn a_batch_the_broker_does_not_take_is_given_back_whole_and_published_later() {
    let vhost = TestVhost::new().await;
    let outbox = MemoryOutbox::with((0..5).map(|n| format!("event-{n}")));
    // No queue is bound yet: a mandatory event comes back, and so does its whole batch.
    relay_until(&vhost, &outbox, 1, |shelf| shelf.given_back >= 2).await;
    {
        let shelf = outbox.shelf();
        assert_eq!(shelf.removed, Vec::<String>::new(), "nothing removed");
        assert_eq!(shelf.pending.len(), 5, "every event pending again");
    }
    vhost
        .observe(OBSERVER, EXCHANGE, ExchangeKind::Topic, ROUTING_KEY)
        .await;
    relay_until(&vhost, &outbox, 1, |shelf| shelf.removed.len() == 5).await;
    let ids = published(&vhost).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
}
