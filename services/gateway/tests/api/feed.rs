//! The live feed against the real RabbitMQ: events published to the `users` and `messages`
//! exchanges (as the user and slack services publish them) reach every client of the gateway
//! as frames with the trace id of the request that caused them; filters; hundreds of clients;
//! a client that never reads is closed while the others keep receiving; the connection limit;
//! hostile frames; and the gateway's memory stays flat over a burst with a stuck client.

use std::time::{Duration, Instant};

use contract::events::{MessageCreated, UserCreated};
use contract::messages::Message as ChatMessage;
use contract::users::User;
use futures_util::future::join_all;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;
use test_support::feed::Ended;
use test_support::{FeedClient, ServiceProcess, TestVhost, free_port};
use tungstenite::Message;

use crate::helpers::{SECRET, TestGateway, spawn_gateway, token};

/// The trace id of the request that caused event `n`.
fn trace_of(n: usize) -> String {
    format!(
        "{:032x}",
        (0x4bf9_2f35_77b3_4da6_u128 << 64) | (n as u128 + 1)
    )
}

fn headers(trace: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(format!("00-{trace}-00f067aa0ba902b7-01"))),
    );
    headers
}

/// Publishes user.created number `n`, as the user service's relay would.
async fn publish_user(vhost: &TestVhost, n: usize) -> UserCreated {
    let event = UserCreated::new(
        uuid::Uuid::new_v4(),
        User {
            id: n as i64 + 1,
            name: format!("user {n}"),
            email: format!("user-{n}@example.com"),
            created_at: chrono::Utc::now(),
        },
    );
    publish(vhost, "users", "user.created", event.id, &event, n).await;
    event
}

async fn publish_message(vhost: &TestVhost, n: usize) -> MessageCreated {
    let event = MessageCreated::new(ChatMessage {
        channel: "#user".into(),
        message: format!("message {n}"),
        created_at: chrono::Utc::now(),
    });
    publish(vhost, "messages", "message.created", event.id, &event, n).await;
    event
}

/// Publishes `event` as its producer does: its id as the message id, in the trace of
/// request `n`.
async fn publish(
    vhost: &TestVhost,
    exchange: &str,
    routing_key: &str,
    id: uuid::Uuid,
    event: &impl serde::Serialize,
    n: usize,
) {
    vhost
        .publish(
            exchange,
            routing_key,
            &serde_json::to_vec(event).unwrap(),
            BasicProperties::default()
                .with_message_id(id.to_string().into())
                .with_headers(headers(&trace_of(n))),
        )
        .await;
}

/// The gateway feed queues in `vhost`, with the exchanges each is bound to.
async fn feed_queues(vhost: &TestVhost) -> Vec<(String, Vec<String>)> {
    let bindings = vhost.management("bindings/{vhost}").await;
    let mut queues: Vec<(String, Vec<String>)> = Vec::new();
    for binding in bindings.as_array().into_iter().flatten() {
        let Some(queue) = binding["destination"]
            .as_str()
            .filter(|queue| queue.starts_with("gateway.feed."))
        else {
            continue;
        };
        let exchange = binding["source"].as_str().unwrap_or_default().to_owned();
        match queues.iter_mut().find(|(name, _)| name == queue) {
            Some((_, exchanges)) => exchanges.push(exchange),
            None => queues.push((queue.to_owned(), vec![exchange])),
        }
    }
    for (_, exchanges) in &mut queues {
        exchanges.retain(|exchange| !exchange.is_empty());
        exchanges.sort();
    }
    queues
}

/// Waits until `vhost` holds `count` feed queues.
async fn until_feed_queues(vhost: &TestVhost, count: usize) -> Vec<(String, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queues = feed_queues(vhost).await;
        if queues.len() == count {
            return queues;
        }
        assert!(
            Instant::now() < deadline,
            "after 10 s, {} feed queues instead of {count}: {queues:?}",
            queues.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn gateway_with_feed(extra: &[(&str, String)]) -> (TestVhost, TestGateway) {
    let vhost = TestVhost::new().await;
    let mut overrides = vec![
        ("AMQP_URL", vhost.amqp_url()),
        ("RATE_LIMIT_PER_SECOND", "100000".to_owned()),
        ("RATE_LIMIT_BURST", "100000".to_owned()),
    ];
    overrides.extend(extra.iter().cloned());
    let gateway = spawn_gateway(&overrides).await;
    (vhost, gateway)
}

#[tokio::test]
async fn the_feed_consumes_only_while_a_client_is_connected() {
    let (vhost, gateway) = gateway_with_feed(&[]).await;
    // Ready, connected to the broker, and no queue while nobody watches.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(feed_queues(&vhost).await, []);

    // The first client's upgrade is answered once its queue is consumed: an event published
    // the moment it is connected reaches it.
    let mut first = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let user = publish_user(&vhost, 0).await;
    assert_eq!(
        first.frames(1, Duration::from_secs(2)).await[0]["id"],
        user.id.to_string()
    );
    let queues = feed_queues(&vhost).await;
    assert_eq!(queues.len(), 1, "{queues:?}");
    assert_eq!(
        queues[0].1,
        ["messages", "users"],
        "bound to both exchanges"
    );

    // One queue however many clients; it stays while one is left.
    let mut second = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    assert_eq!(feed_queues(&vhost).await, queues);
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(feed_queues(&vhost).await, queues);
    let message = publish_message(&vhost, 1).await;
    assert_eq!(
        second.frames(1, Duration::from_secs(2)).await[0]["id"],
        message.id.to_string()
    );

    // After the last client the consumer is cancelled and the queue deleted.
    drop(second);
    until_feed_queues(&vhost, 0).await;
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"websocket_connections_active{service="gateway"} 0"#),
        "{metrics}"
    );

    // A client coming back gets a queue of its own again, and every event from then on.
    let mut third = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let user = publish_user(&vhost, 2).await;
    assert_eq!(
        third.frames(1, Duration::from_secs(2)).await[0]["id"],
        user.id.to_string()
    );
    assert_eq!(until_feed_queues(&vhost, 1).await.len(), 1);
}

#[tokio::test]
async fn events_reach_every_client_as_frames_with_the_trace_of_their_request() {
    let (vhost, gateway) = gateway_with_feed(&[]).await;
    let mut first = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let mut second = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let user = publish_user(&vhost, 0).await;
    let message = publish_message(&vhost, 1).await;
    for client in [&mut first, &mut second] {
        let frames = client.frames(2, Duration::from_secs(1)).await;
        assert_eq!(frames[0]["type"], "user.created");
        assert_eq!(frames[0]["id"], user.id.to_string());
        assert_eq!(frames[0]["trace_id"], trace_of(0));
        assert_eq!(frames[0]["user"], serde_json::to_value(&user.user).unwrap());
        assert!(frames[0]["occurred_at"].is_string());
        assert_eq!(frames[1]["type"], "message.created");
        assert_eq!(frames[1]["trace_id"], trace_of(1));
        assert_eq!(
            frames[1]["message"],
            serde_json::to_value(&message.message).unwrap()
        );
    }
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("websocket_connections_active"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"websocket_frames_sent_total{service="gateway",type="user.created"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("websocket_delivery_lag_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn clients_get_only_the_types_they_ask_for_and_an_unknown_type_is_refused() {
    let (vhost, gateway) = gateway_with_feed(&[]).await;
    let mut messages =
        FeedClient::connect(&gateway.address, &token("feed"), "?types=message.created").await;
    let mut users =
        FeedClient::connect(&gateway.address, &token("feed"), "?types=user.created").await;
    publish_user(&vhost, 0).await;
    publish_message(&vhost, 1).await;
    assert_eq!(
        messages.frames(1, Duration::from_secs(2)).await[0]["type"],
        "message.created"
    );
    assert_eq!(
        users.frames(1, Duration::from_secs(2)).await[0]["type"],
        "user.created"
    );
    assert!(
        messages
            .next_frame(Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(users.next_frame(Duration::from_millis(300)).await.is_none());

    assert_eq!(
        FeedClient::try_connect(&gateway.address, &token("feed"), "?types=user.deleted")
            .await
            .err()
            .as_deref(),
        Some("400")
    );
    let problem: Value = gateway
        .client
        .get(gateway.url("/ws/events?types=user.created,nope"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "#/types");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_all_get_every_event_of_a_burst_of_two_hundred() {
    // The burst is what is measured; keep-alive has tests of its own. One test process reading
    // 500 sockets on a busy machine can read a ping late enough to be closed as idle.
    let (vhost, gateway) = gateway_with_feed(&[
        ("WS_PING_INTERVAL_MS", "600000".to_owned()),
        ("WS_MAX_CONNECTIONS_PER_CLIENT", "500".to_owned()),
    ])
    .await;
    let watcher = token("feed");
    let mut clients =
        join_all((0..500).map(|_| FeedClient::connect(&gateway.address, &watcher, ""))).await;
    // The clients read while the burst comes, as real ones do: one that reads nothing for the
    // feed's send timeout is closed as stuck, which a slow machine would reach.
    let burst = async {
        for n in 0..200 {
            publish_user(&vhost, n).await;
        }
    };
    let reads = join_all(clients.iter_mut().map(|client| async move {
        // Generous: 100,000 frames from a debug build on a busy machine.
        let frames = client.frames(200, Duration::from_secs(90)).await;
        frames
            .iter()
            .map(|frame| frame["user"]["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    }));
    let ((), received) = tokio::join!(burst, reads);
    let expected: Vec<i64> = (1..=200).collect();
    for (n, ids) in received.iter().enumerate() {
        assert_eq!(ids, &expected, "client {n}: every event, in order, once");
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_while_the_others_keep_receiving() {
    let (vhost, gateway) = gateway_with_feed(&[("WS_PING_INTERVAL_MS", "300".to_owned())]).await;
    let _stuck = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let mut reader = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let started = Instant::now();
    for n in 0..20 {
        publish_user(&vhost, n).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The reader answers pings as it reads.
        assert_eq!(
            reader.frames(1, Duration::from_secs(2)).await[0]["user"]["id"],
            n as i64 + 1
        );
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"websocket_clients_closed_total{service="gateway",reason="idle"} 1"#),
        "the silent client was not closed:\n{metrics}"
    );
    assert!(
        metrics.contains(r#"websocket_connections_active{service="gateway"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_that_falls_behind_is_closed_as_slow_and_the_others_are_not_delayed() {
    let (vhost, gateway) = gateway_with_feed(&[]).await;
    let _stuck = FeedClient::connect(&gateway.address, &token("feed"), "?types=user.created").await;
    let mut other =
        FeedClient::connect(&gateway.address, &token("feed"), "?types=message.created").await;
    // Far more than the socket's buffers and the feed's hold: the stuck client's sends block,
    // then it falls a whole buffer behind.
    let long = "x".repeat(100);
    let started = Instant::now();
    let mut slow_closed = false;
    for n in 0..20_000 {
        let event = UserCreated::new(
            uuid::Uuid::new_v4(),
            User {
                id: n + 1,
                name: long.clone(),
                email: format!("{long}-{n}@example.com"),
                created_at: chrono::Utc::now(),
            },
        );
        vhost
            .publish(
                "users",
                "user.created",
                &serde_json::to_vec(&event).unwrap(),
                BasicProperties::default(),
            )
            .await;
        if n % 1000 == 999 && gateway.metrics().await.contains(r#"reason="slow"} 1"#) {
            slow_closed = true;
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow_closed {
        assert!(
            Instant::now() < deadline,
            "the stuck client was never closed:\n{}",
            gateway.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        slow_closed = gateway.metrics().await.contains(r#"reason="slow"} 1"#);
    }
    eprintln!("the stuck client was closed after {:?}", started.elapsed());
    publish_message(&vhost, 0).await;
    assert_eq!(
        other.frames(1, Duration::from_secs(2)).await[0]["type"],
        "message.created"
    );
}

#[tokio::test]
async fn past_ws_max_connections_the_upgrade_is_a_503() {
    let (_vhost, gateway) = gateway_with_feed(&[("WS_MAX_CONNECTIONS", "2".to_owned())]).await;
    let _first = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    let second = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    assert_eq!(
        FeedClient::try_connect(&gateway.address, &token("feed"), "")
            .await
            .err()
            .as_deref(),
        Some("503")
    );
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while FeedClient::try_connect(&gateway.address, &token("feed"), "")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "a freed place was not given again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_sends_data_or_an_oversized_frame_is_closed_and_the_others_go_on() {
    let (vhost, gateway) = gateway_with_feed(&[]).await;
    let mut talker = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    talker.send(Message::text("hello")).await;
    assert_eq!(
        talker.ended(Duration::from_secs(2)).await,
        Some(Ended::Closed(1003, "this feed takes no messages".into()))
    );
    let mut binary = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    binary.send(Message::binary(vec![0u8; 16])).await;
    assert!(matches!(
        binary.ended(Duration::from_secs(2)).await,
        Some(Ended::Closed(1003, _))
    ));
    let mut large = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    large.send(Message::Ping(vec![b'x'; 100].into())).await;
    large.send(Message::binary(vec![b'x'; 5000])).await;
    assert!(
        matches!(
            large.ended(Duration::from_secs(2)).await,
            Some(Ended::Closed(1009, _) | Ended::Dropped)
        ),
        "a frame over 4 KiB closes the connection"
    );
    let mut polite = FeedClient::connect(&gateway.address, &token("feed"), "").await;
    polite.send(Message::Ping(vec![1, 2, 3].into())).await;
    publish_user(&vhost, 0).await;
    assert_eq!(
        polite.frames(1, Duration::from_secs(2)).await[0]["type"],
        "user.created"
    );
    let metrics = gateway.metrics().await;
    assert!(metrics.contains(r#"reason="unsupported"} 2"#), "{metrics}");
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn the_gateways_memory_stays_flat_over_a_burst_with_a_stuck_client() {
    let vhost = TestVhost::new().await;
    let port = free_port();
    let mut gateway = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_gateway"),
        &[
            ("LISTEN_HOST", "127.0.0.1".to_owned()),
            ("GATEWAY_PORT", port.to_string()),
            ("AMQP_URL", vhost.amqp_url()),
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            // The stuck client stays for the whole burst: only the buffer bounds it.
            ("WS_PING_INTERVAL_MS", "600000".to_owned()),
            ("JWT_SECRET", SECRET.to_owned()),
        ],
    );
    let address = format!("http://127.0.0.1:{port}");
    gateway
        .wait_until_ready(&format!("{address}/health/ready"))
        .await;
    let pid = gateway.id();
    let _stuck = FeedClient::connect(&address, &token("feed"), "").await;
    let mut reader = FeedClient::connect(&address, &token("feed"), "").await;
    // The reader reads as the events come (one that fell a whole buffer behind, or took
    // nothing for the send timeout, would be closed).
    let burst = async {
        for n in 0..300 {
            publish_user(&vhost, n).await;
        }
    };
    tokio::join!(burst, reader.frames(300, Duration::from_secs(20)));
    let before = rss_kib(pid);
    for round in 1..=30 {
        let burst = async {
            for n in round * 100..(round + 1) * 100 {
                publish_user(&vhost, n + 200).await;
            }
        };
        tokio::join!(burst, reader.frames(100, Duration::from_secs(20)));
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 8 * 1024,
        "the gateway grew from {before} KiB to {after} KiB over 3,000 events with a stuck client"
    );
    gateway.terminate();
    assert_eq!(gateway.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test]
async fn the_feed_needs_a_token_from_an_allowed_origin_and_bounds_each_client() {
    let (_vhost, gateway) = gateway_with_feed(&[
        ("WS_MAX_CONNECTIONS_PER_CLIENT", "2".to_owned()),
        ("CORS_ALLOWED_ORIGINS", "https://app.example".to_owned()),
    ])
    .await;
    let host = gateway.address.trim_start_matches("http://").to_owned();
    let browser = |origin: &str, protocols: String| {
        vec![
            ("origin", origin.to_owned()),
            ("sec-websocket-protocol", protocols),
        ]
    };
    let offered = format!("feed, bearer.{}", token("browser"));
    let refused = |outcome: Result<FeedClient, String>| outcome.err();

    assert_eq!(
        refused(FeedClient::try_connect_with(&gateway.address, "", &[]).await).as_deref(),
        Some("401"),
        "no token"
    );
    assert_eq!(
        refused(FeedClient::try_connect(&gateway.address, "not.a.token", "").await).as_deref(),
        Some("401")
    );
    // A browser: the token as a subprotocol, answered with `feed`, from its own origin.
    let own = FeedClient::try_connect_with(
        &gateway.address,
        "",
        &browser(&format!("http://{host}"), offered.clone()),
    )
    .await
    .unwrap();
    assert_eq!(own.protocol(), Some("feed"));
    assert_eq!(
        refused(
            FeedClient::try_connect_with(
                &gateway.address,
                "",
                &browser("https://evil.example", offered.clone())
            )
            .await
        )
        .as_deref(),
        Some("403"),
        "another site's page"
    );
    // An origin CORS_ALLOWED_ORIGINS names; then this client's cap of two.
    let listed = FeedClient::try_connect_with(
        &gateway.address,
        "",
        &browser("https://app.example", offered.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        refused(FeedClient::try_connect(&gateway.address, &token("feed"), "").await).as_deref(),
        Some("429"),
        "a third feed from one client"
    );
    drop((own, listed));
    let deadline = Instant::now() + Duration::from_secs(5);
    while FeedClient::try_connect(&gateway.address, &token("feed"), "")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the client's places were not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
