//! JSON-RPC over RabbitMQ with the stack's client and server, on a vhost of the test's own:
//! concurrent calls each get their own reply, a slow answer is a timeout and its late reply is
//! discarded, a call with no server fails at once, a broker cut fails the calls in flight and
//! the next ones succeed after it, and 10,000 calls leave no queue or channel behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::rpc::{self, codes};
use futures_util::future::join_all;
use messaging::ConsumerStatus;
use messaging::rpc::{CallError, Procedures, RpcClient};
use serde_json::{Value, json};
use test_support::{TcpProxy, TestVhost};
use tokio::sync::watch;

const QUEUE: &str = "test.rpc";

/// `echo` returns its params; `slow` answers after `params.ms`; `fail` answers error -32001.
struct Toy;

impl Procedures for Toy {
    fn method(&self, name: &str) -> Option<&'static str> {
        ["echo", "slow", "fail"]
            .into_iter()
            .find(|method| *method == name)
    }

    async fn call(&self, method: &'static str, params: Value) -> Result<Value, rpc::Error> {
        match method {
            "slow" => {
                let ms = params["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(params)
            }
            "fail" => Err(rpc::Error::new(codes::UNAVAILABLE, "down")),
            _ => Ok(params),
        }
    }
}

/// A server on `url`, stopped when the sender is dropped.
async fn serve(url: String) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let status = ConsumerStatus::default();
    tokio::spawn(messaging::rpc::serve(
        url,
        QUEUE,
        64,
        Arc::new(Toy),
        status.clone(),
        service_kit::serve::stopped(stopped),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status.is_consuming() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop
}

fn broker() -> String {
    std::env::var("TEST_RABBITMQ_ADDRESS").unwrap_or_else(|_| "127.0.0.1:5672".to_owned())
}

#[tokio::test]
async fn a_thousand_concurrent_calls_each_get_their_own_reply() {
    let vhost = TestVhost::new().await;
    let _server = serve(vhost.amqp_url()).await;
    let client = RpcClient::new(vhost.amqp_url(), QUEUE, Duration::from_secs(20));
    let started = Instant::now();
    let calls = join_all((0..1000).map(|n| {
        let client = &client;
        async move { client.call::<_, Value>("echo", &json!({"n": n})).await }
    }))
    .await;
    for (n, reply) in calls.into_iter().enumerate() {
        assert_eq!(
            reply.unwrap(),
            json!({"n": n}),
            "call {n} got another's reply"
        );
    }
    eprintln!("1000 concurrent calls in {:?}", started.elapsed());
    match client.call::<_, Value>("fail", &json!({})).await {
        Err(CallError::Remote(error)) => assert_eq!(error.code, codes::UNAVAILABLE),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_and_its_late_reply_goes_to_no_other_call() {
    let vhost = TestVhost::new().await;
    let _server = serve(vhost.amqp_url()).await;
    let client = RpcClient::new(vhost.amqp_url(), QUEUE, Duration::from_millis(300));
    let started = Instant::now();
    let slow = client
        .call::<_, Value>("slow", &json!({"ms": 800, "who": "slow"}))
        .await;
    assert!(matches!(slow, Err(CallError::Timeout(_))), "{slow:?}");
    assert!(started.elapsed() < Duration::from_millis(700));
    // The slow call's reply comes while these wait: each still gets its own.
    let later = join_all((0..20).map(|n| {
        let client = &client;
        async move { client.call::<_, Value>("echo", &json!({"n": n})).await }
    }))
    .await;
    for (n, reply) in later.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), json!({"n": n}));
    }
}

#[tokio::test]
async fn a_call_no_server_would_take_fails_at_once() {
    let vhost = TestVhost::new().await;
    let client = RpcClient::new(vhost.amqp_url(), QUEUE, Duration::from_secs(5));
    let started = Instant::now();
    let call = client.call::<_, Value>("echo", &json!({})).await;
    assert!(matches!(call, Err(CallError::Unavailable(_))), "{call:?}");
    // The queue exists but nobody consumes it: still at once, not after the timeout.
    let stop = serve(vhost.amqp_url()).await;
    drop(stop);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let consumers = vhost.management(&format!("queues/{{vhost}}/{QUEUE}")).await["consumers"]
            .as_u64()
            .unwrap_or(1);
        if consumers == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let call = client.call::<_, Value>("echo", &json!({})).await;
    assert!(matches!(call, Err(CallError::Unavailable(_))), "{call:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5) + Duration::from_secs(10),
        "waited for a timeout"
    );
}

#[tokio::test]
async fn a_broker_cut_fails_the_calls_in_flight_and_the_next_ones_succeed_after_it() {
    let vhost = TestVhost::new().await;
    let _server = serve(vhost.amqp_url()).await;
    let proxy = TcpProxy::start(&broker());
    let client = RpcClient::new(
        vhost.amqp_url_via(&proxy.address().to_string()),
        QUEUE,
        Duration::from_secs(10),
    );
    assert_eq!(
        client.call::<_, Value>("echo", &json!(1)).await.unwrap(),
        json!(1)
    );
    let slow = json!({"ms": 1000});
    let in_flight = client.call::<_, Value>("slow", &slow);
    let cut = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.cut();
    };
    let started = Instant::now();
    let (in_flight, ()) = tokio::join!(in_flight, cut);
    assert!(
        matches!(
            in_flight,
            Err(CallError::ConnectionLost | CallError::Unavailable(_))
        ),
        "{in_flight:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "the call hung");
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.call::<_, Value>("echo", &json!(2)).await {
            Ok(reply) => {
                assert_eq!(reply, json!(2));
                break;
            }
            Err(error) => assert!(Instant::now() < deadline, "never recovered: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The vhost's queues and channels, as the management API counts them.
async fn queues_and_channels(vhost: &TestVhost) -> (usize, usize) {
    let queues = vhost.management("queues/{vhost}").await;
    let channels = vhost.management("vhosts/{vhost}/channels").await;
    (
        queues.as_array().map_or(0, Vec::len),
        channels.as_array().map_or(0, Vec::len),
    )
}

#[tokio::test]
async fn ten_thousand_calls_leave_no_queue_and_no_channel_behind() {
    let vhost = TestVhost::new().await;
    let _server = serve(vhost.amqp_url()).await;
    let client = RpcClient::new(vhost.amqp_url(), QUEUE, Duration::from_secs(20));
    client.call::<_, Value>("echo", &json!(0)).await.unwrap();
    // The management API's channel list is refreshed every few seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = queues_and_channels(&vhost).await;
    for batch in 0..100 {
        let calls = join_all((0..100).map(|n| {
            let client = &client;
            async move {
                client
                    .call::<_, Value>("echo", &json!(batch * 100 + n))
                    .await
            }
        }))
        .await;
        assert!(calls.iter().all(Result::is_ok));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(queues_and_channels(&vhost).await, before);
}
