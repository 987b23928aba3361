//! Faults under load, through proxies each test controls (so tests running in parallel are
//! unaffected): a bounded load of `POST /user` through the gateway while Postgres, RabbitMQ or
//! Redis goes away and comes back. Every created user must be announced in `#user` exactly
//! once; a request that was not created must have left nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use messaging::topology;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use test_support::{ServiceProcess, TcpProxy};
use tokio::sync::Mutex;

mod common;
use common::Environment;

/// The answers of a load: email -> status.
type Answers = Arc<Mutex<BTreeMap<String, u16>>>;

/// `workers` clients posting users with unique emails until [`Load::finish`].
struct Load {
    answers: Answers,
    stopping: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(gateway: &str, token: &str, workers: usize) -> Self {
        let answers = Answers::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|worker| {
                let (gateway, token) = (gateway.to_owned(), token.to_owned());
                let (answers, stopping) = (Arc::clone(&answers), Arc::clone(&stopping));
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let mut n = 0;
                    while !stopping.load(Ordering::Relaxed) {
                        let email = format!("load-{worker}-{n}@example.com");
                        n += 1;
                        let status = client
                            .post(format!("{gateway}/user"))
                            .bearer_auth(&token)
                            .json(&json!({"name": "under load", "email": email}))
                            .send()
                            .await
                            .map(|response| response.status().as_u16())
                            .unwrap_or(0);
                        answers.lock().await.insert(email, status);
                        if status == 0 {
                            // Nobody answers (the stack is stopping): do not spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            answers,
            stopping,
            workers,
        }
    }

    /// How many users were created (answered 201) so far.
    async fn created(&self) -> usize {
        let answers = self.answers.lock().await;
        answers.values().filter(|status| **status == 201).count()
    }

    /// Waits until `count` users were created (answered 201): a load measured by what it did,
    /// not by how long it ran, holds on a machine slowed by the tests beside it.
    async fn until_created(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = self.created().await;
            if created >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the stack created only {created} of {count} users in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets each client finish its request, then returns every answer.
    async fn finish(self) -> BTreeMap<String, u16> {
        self.stopping.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        Arc::try_unwrap(self.answers).unwrap().into_inner()
    }
}

/// Waits until `#user` holds `expected` messages, then returns how often each text appears.
/// The channel is read in one `LRANGE`: paging through it while messages arrive would count a
/// message twice as the pages shift.
async fn announcements(environment: &Environment, expected: usize) -> BTreeMap<String, usize> {
    let key = user_channel(environment);
    let mut redis = environment.redis.connection().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut previous = usize::MAX;
    loop {
        let raw: Vec<String> = redis::AsyncCommands::lrange(&mut redis, &key, 0, -1)
            .await
            .unwrap();
        // Settled: the expected count reached, and nothing more arrived since the last look.
        if raw.len() >= expected && raw.len() == previous {
            let mut counts = BTreeMap::new();
            for entry in &raw {
                let message: Value = serde_json::from_str(entry).unwrap();
                *counts
                    .entry(message["message"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} announcements after 60 s",
            raw.len()
        );
        previous = raw.len();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn start(environment: &Environment, extra: &[(&'static str, String)]) -> ServiceProcess {
    let mut variables = environment.variables();
    variables.extend(extra.iter().cloned());
    variables.push(("AMQP_RETRY_DELAY_MS", "200".into()));
    // The load is one client: it must not meet the gateway's per-client limit.
    variables.push(("RATE_LIMIT_PER_SECOND", "100000".into()));
    variables.push(("RATE_LIMIT_BURST", "100000".into()));
    variables.push(("AMQP_MAX_ATTEMPTS", "100".into()));
    environment.launch(&variables).await
}

/// Runs a load of 8 clients for 3 s while `proxy` is cut for the middle second.
async fn load_across_a_cut(environment: &Environment, proxy: &TcpProxy) -> BTreeMap<String, u16> {
    let gateway = Environment::url(environment.gateway_port);
    let token = environment.token("load");
    let load = Load::start(&gateway, &token, 8);
    load.until_created(20).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();
    // Load after the outage too, to show the stack recovered.
    load.until_created(load.created().await + 20).await;
    load.finish().await
}

/// Checks that each user in `created` is announced in `#user` exactly once, and nothing else.
async fn assert_announced_once_each(environment: &Environment, created: &[&String]) {
    let counts = announcements(environment, created.len()).await;
    for email in created {
        let text = format!("User {email} created");
        assert_eq!(counts.get(&text), Some(&1), "{text}");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        created.len(),
        "nothing else was announced"
    );
}

/// Runs a load while `proxy`, which is not on the request path, is cut for a second in the
/// middle of it, and checks that every request succeeds and every user is announced once.
async fn every_user_is_announced_once_across(environment: &Environment, proxy: &TcpProxy) {
    let answers = load_across_a_cut(environment, proxy).await;
    let created: Vec<&String> = answers
        .iter()
        .filter(|(_, status)| **status == 201)
        .map(|(email, _)| email)
        .collect();
    let others: Vec<_> = answers
        .iter()
        .filter(|(_, status)| **status != 201)
        .collect();
    assert!(
        others.is_empty(),
        "the outage was not on the request path, yet: {others:?}"
    );
    assert_announced_once_each(environment, &created).await;
}

#[tokio::test]
async fn postgres_cut_mid_load_is_201_with_one_announcement_or_5xx_with_nothing() {
    let environment = Environment::new().await;
    let proxy = TcpProxy::start(&test_support::postgres::server_address());
    let stack = start(
        &environment,
        &[(
            "DATABASE_URL",
            environment.database.url_via(&proxy.address().to_string()),
        )],
    )
    .await;
    let answers = load_across_a_cut(&environment, &proxy).await;

    // What the database holds, read past the proxy.
    let mut connection = database(&environment).await;
    let stored = stored_emails(&mut connection).await;
    let mut created = Vec::new();
    for (email, status) in &answers {
        match status {
            201 => {
                assert!(
                    stored.contains(email),
                    "{email} was answered 201 but not stored"
                );
                created.push(email);
            }
            500..=599 => assert!(
                !stored.contains(email),
                "{email} was answered {status} but stored"
            ),
            _ => panic!("{email} was answered {status}: neither created nor a clear 5xx"),
        }
    }
    assert_announced_once_each(&environment, &created).await;
    stop(stack).await;
}

#[tokio::test]
async fn rabbitmq_cut_mid_load_loses_and_duplicates_no_event() {
    let environment = Environment::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672");
    let stack = start(
        &environment,
        &[(
            "AMQP_URL",
            environment.vhost.amqp_url_via(&proxy.address().to_string()),
        )],
    )
    .await;
    every_user_is_announced_once_across(&environment, &proxy).await;
    stop(stack).await;
}

#[tokio::test]
async fn redis_cut_mid_load_means_retries_and_no_lost_announcement() {
    let environment = Environment::new().await;
    let proxy = TcpProxy::start("127.0.0.1:6379");
    let stack = start(
        &environment,
        &[("REDIS_URL", format!("redis://{}", proxy.address()))],
    )
    .await;
    every_user_is_announced_once_across(&environment, &proxy).await;
    stop(stack).await;
}

/// How many messages `#user` holds now.
async fn announcements_now(environment: &Environment) -> usize {
    let key = user_channel(environment);
    let mut redis = environment.redis.connection().await;
    redis::AsyncCommands::llen(&mut redis, &key).await.unwrap()
}

/// The Redis list that holds `#user`.
fn user_channel(environment: &Environment) -> String {
    format!("{}channel:#user", environment.redis.prefix())
}

/// Every email stored in the users table.
async fn stored_emails(connection: &mut PgConnection) -> BTreeSet<String> {
    sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(connection)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// SIGTERM, and a clean exit.
async fn stop(stack: ServiceProcess) {
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(30)).await.code, Some(0));
}

/// A connection to the test database, past any proxy.
async fn database(environment: &Environment) -> PgConnection {
    PgConnection::connect(&environment.database.url())
        .await
        .unwrap()
}

#[tokio::test]
async fn sigterm_under_load_finishes_what_is_in_flight_and_loses_nothing() {
    let environment = Environment::new().await;
    // A slow Slack: slack-queue holds messages in hand and a backlog waits in its queue.
    environment.webhook.set_delay(Duration::from_millis(300));
    let stack = start(&environment, &[]).await;
    let gateway = Environment::url(environment.gateway_port);
    let token = environment.token("load");
    let load = Load::start(&gateway, &token, 8);
    load.until_created(30).await;
    stack.terminate();
    let exit = stack.wait(Duration::from_secs(30)).await;
    let answers = load.finish().await;
    assert_eq!(exit.code, Some(0), "a clean exit");

    // In-flight requests completed: each was created, or never reached the stack.
    let mut connection = database(&environment).await;
    let stored = stored_emails(&mut connection).await;
    let mut created = Vec::new();
    for (email, status) in &answers {
        match status {
            201 => created.push(email),
            0 => assert!(
                !stored.contains(email),
                "{email} was stored but its answer lost"
            ),
            _ => panic!("{email} was answered {status} during shutdown"),
        }
    }
    assert_eq!(
        stored.len(),
        created.len(),
        "every stored user was answered 201"
    );

    // The spans of every answered request were flushed before the exit.
    let answered_spans = environment
        .zipkin
        .spans()
        .iter()
        .filter(|span| {
            span["localEndpoint"]["serviceName"] == "gateway"
                && span["kind"] == "SERVER"
                && span["tags"]["http.response.status_code"] == "201"
        })
        .count();
    assert_eq!(answered_spans, created.len(), "a gateway span per 201");

    // Messages in hand were finished and acknowledged, the others stayed queued: each event is
    // announced, queued or still in the outbox, exactly one of the three.
    let announced = announcements_now(&environment).await;
    let queue = topology::SLACK_QUEUE;
    let queued = environment.vhost.count(queue.name).await
        + environment.vhost.count(&queue.retry_queue()).await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(queued > 0, "the slow webhook left a backlog in the queue");
    assert_eq!(
        announced + queued as usize + unsent as usize,
        created.len(),
        "{announced} announced, {queued} queued, {unsent} in the outbox"
    );

    // Started again, the stack announces the rest: every user once, every webhook call once.
    environment.webhook.set_delay(Duration::ZERO);
    let stack = start(&environment, &[]).await;
    assert_announced_once_each(&environment, &created).await;
    let mut deliveries = BTreeMap::new();
    for body in environment.webhook.delivered() {
        *deliveries.entry(body["text"].to_string()).or_insert(0) += 1;
    }
    assert!(
        deliveries.values().all(|count| *count == 1),
        "{deliveries:?}"
    );
    assert_eq!(deliveries.len(), created.len());
    stop(stack).await;
}
