//! What a cluster demands of the processes, proven natively: two of every process (each an OS
//! process of its own, `stack <service>`, on its own port) against one database, vhost and
//! Redis prefix, with the services behind a [`Balancer`] that routes as a Kubernetes Service
//! does (to ready replicas only). Under load through both gateways every user is stored,
//! published and announced once, every RPC call answered, every feed client on either gateway
//! sees every event once, and each replica names itself in `/metrics`; a rolling restart of
//! every replica under load loses, duplicates and fails nothing, each stopping process
//! reporting not ready before it drains; and a replica cut from its database or broker reports
//! not ready within a probe period, and ready again after.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::ExchangeKind;
use lapin::options::BasicGetOptions;
use serde_json::{Value, json};
use test_support::{Balancer, FeedClient, ServiceProcess, TcpProxy, free_port};

mod common;
use common::Environment;

/// In the order they start: the gateway last, once what it routes to is up.
const SERVICES: [&str; 5] = ["user", "slack", "user-queue", "slack-queue", "gateway"];
/// How long a stopping replica reports not ready before it drains (a Service's endpoints
/// take about as long to drop it).
const SHUTDOWN_DELAY: Duration = Duration::from_millis(1500);
/// The queue this test binds to `users` to count what the relays publish.
const PUBLISHED: &str = "test.published.user-created";

fn port_variable(service: &str) -> &'static str {
    match service {
        "gateway" => "GATEWAY_PORT",
        "user" => "USER_PORT",
        "slack" => "SLACK_PORT",
        "user-queue" => "USER_QUEUE_PORT",
        _ => "SLACK_QUEUE_PORT",
    }
}

struct Replicas {
    environment: Environment,
    /// A Service for each process the gateways call.
    balancers: BTreeMap<&'static str, Balancer>,
    ports: BTreeMap<(&'static str, usize), u16>,
    processes: BTreeMap<(&'static str, usize), ServiceProcess>,
}

impl Replicas {
    async fn start() -> Self {
        let environment = Environment::new().await;
        environment
            .vhost
            .observe(
                PUBLISHED,
                contract::broker::USERS_EXCHANGE,
                ExchangeKind::Topic,
                contract::broker::USER_CREATED,
            )
            .await;
        let ports: BTreeMap<(&str, usize), u16> = SERVICES
            .iter()
            .flat_map(|service| (0..2).map(move |replica| ((*service, replica), free_port())))
            .collect();
        let balancers = SERVICES
            .iter()
            .filter(|service| **service != "gateway")
            .map(|service| {
                let backends: Vec<(String, String)> = (0..2)
                    .map(|replica| {
                        let port = ports[&(*service, replica)];
                        (
                            format!("127.0.0.1:{port}"),
                            format!("http://127.0.0.1:{port}/health/ready"),
                        )
                    })
                    .collect();
                (*service, Balancer::start(&backends))
            })
            .collect();
        let mut replicas = Self {
            environment,
            balancers,
            ports,
            processes: BTreeMap::new(),
        };
        for service in SERVICES {
            for replica in 0..2 {
                replicas.spawn(service, replica).await;
            }
        }
        replicas
    }

    fn url(&self, service: &'static str, replica: usize) -> String {
        Environment::url(self.ports[&(service, replica)])
    }

    fn gateways(&self) -> [String; 2] {
        [self.url("gateway", 0), self.url("gateway", 1)]
    }

    fn variables(&self, service: &'static str, replica: usize) -> Vec<(&'static str, String)> {
        let mut variables: BTreeMap<&'static str, String> =
            self.environment.variables().into_iter().collect();
        variables.insert(
            port_variable(service),
            self.ports[&(service, replica)].to_string(),
        );
        for (called, variable) in [
            ("user", "USER_URL"),
            ("slack", "SLACK_URL"),
            ("user-queue", "USER_QUEUE_URL"),
            ("slack-queue", "SLACK_QUEUE_URL"),
        ] {
            variables.insert(variable, self.balancers[called].url());
        }
        variables.insert("SHUTDOWN_DELAY_MS", SHUTDOWN_DELAY.as_millis().to_string());
        // One client address makes all the load: no rate limit.
        variables.insert("RATE_LIMIT_PER_SECOND", "1000000".into());
        variables.insert("RATE_LIMIT_BURST", "1000000".into());
        variables.insert("AVAILABILITY_RATE_LIMIT_PER_SECOND", "1000000".into());
        variables.insert("AVAILABILITY_RATE_LIMIT_BURST", "1000000".into());
        variables.insert("OTEL_TRACES_EXPORTER", "none".into());
        variables.into_iter().collect()
    }

    async fn spawn(&mut self, service: &'static str, replica: usize) {
        let mut process = ServiceProcess::spawn_with(
            env!("CARGO_BIN_EXE_stack"),
            &[service],
            &self.variables(service, replica),
        );
        process
            .wait_until_ready(&format!("{}/health/ready", self.url(service, replica)))
            .await;
        self.processes.insert((service, replica), process);
    }

    /// SIGTERM to one replica: it must answer not ready while it still serves, then exit 0;
    /// then it starts again on its port.
    async fn restart(&mut self, service: &'static str, replica: usize) {
        let process = self.processes.remove(&(service, replica)).unwrap();
        let url = self.url(service, replica);
        let client = reqwest::Client::new();
        process.terminate();
        let asked = Instant::now();
        loop {
            let ready = client
                .get(format!("{url}/health/ready"))
                .send()
                .await
                .unwrap();
            if ready.status() == 503 {
                let live = client
                    .get(format!("{url}/health/live"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(live.status(), 200, "{service} {replica} still serves");
                break;
            }
            assert!(
                asked.elapsed() < SHUTDOWN_DELAY / 2,
                "{service} {replica} still reports ready after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let exit = process.wait(Duration::from_secs(30)).await;
        assert_eq!(exit.code, Some(0), "{service} {replica}: {}", exit.stderr);
        assert!(
            asked.elapsed() >= SHUTDOWN_DELAY,
            "{service} {replica} drained before its shutdown delay"
        );
        self.spawn(service, replica).await;
        // The balancer's next probe sees it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Each replica's `service_instance_id`, from its `/metrics`.
    async fn instance_ids(&self) -> BTreeMap<(&'static str, usize), String> {
        let mut ids = BTreeMap::new();
        for &(service, replica) in self.ports.keys() {
            let metrics = reqwest::get(format!("{}/metrics", self.url(service, replica)))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let line = metrics
                .lines()
                .find(|line| line.starts_with("build_info{"))
                .unwrap_or_else(|| panic!("{service} {replica} has no build_info"));
            assert!(line.contains(&format!("service=\"{service}\"")), "{line}");
            let id = line
                .split("service_instance_id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no service_instance_id in {line}"));
            ids.insert((service, replica), id.to_owned());
        }
        ids
    }
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Email -> the status it was created with (201, or 202 for `Prefer: respond-async`).
    created: BTreeMap<String, u16>,
    /// RPC calls answered correctly.
    answered: usize,
    /// Requests sent again on the other gateway after a refused or dropped connection.
    retried: usize,
    /// Anything else: a 5xx, a wrong answer, a request no gateway took.
    failures: Vec<String>,
}

/// Load through both gateways, as clients behind a Service: round robin, and a connection
/// refused or dropped sent again on the other gateway (creations carry an Idempotency-Key, so
/// that is safe).
#[derive(Clone)]
struct Load {
    gateways: [String; 2],
    token: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
    turn: Arc<AtomicUsize>,
}

impl Load {
    fn new(replicas: &Replicas) -> Self {
        Self {
            gateways: replicas.gateways(),
            token: replicas.environment.token("replicas"),
            // A request no gateway answers in time is a failure, not a hang.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            seen: Arc::default(),
            turn: Arc::default(),
        }
    }

    async fn send(
        &self,
        what: &str,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Option<reqwest::Response> {
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        for attempt in 0..40 {
            match request(&self.gateways[(first + attempt) % 2]).send().await {
                Ok(response) => return Some(response),
                Err(error) if error.is_connect() || error.is_request() => {
                    self.seen.lock().unwrap().retried += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(error) => {
                    self.fail(format!("{what}: {error}"));
                    return None;
                }
            }
        }
        self.fail(format!("{what}: no gateway took it"));
        None
    }

    fn fail(&self, failure: String) {
        self.seen.lock().unwrap().failures.push(failure);
    }

    /// Creates the user `email`, synchronously or through the command queue.
    async fn create(&self, email: &str, asynchronous: bool) {
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({"name": "replicated", "email": email});
        let response = self
            .send(email, |gateway| {
                let request = self
                    .client
                    .post(format!("{gateway}/user"))
                    .bearer_auth(&self.token)
                    .header("idempotency-key", &key)
                    .json(&body);
                if asynchronous {
                    request.header("prefer", "respond-async")
                } else {
                    request
                }
            })
            .await;
        let Some(response) = response else { return };
        let status = response.status().as_u16();
        let expected = if asynchronous { 202 } else { 201 };
        if status == expected {
            self.seen
                .lock()
                .unwrap()
                .created
                .insert(email.to_owned(), status);
        } else {
            let body = response.text().await.unwrap_or_default();
            self.fail(format!("POST /user {email}: {status} {body}"));
        }
    }

    /// Asks over RPC whether `email` is free, expecting `available`.
    async fn check(&self, email: &str, available: bool) {
        let response = self
            .send(email, |gateway| {
                // The emails here need no escaping.
                self.client
                    .get(format!("{gateway}/users/availability?email={email}"))
                    .bearer_auth(&self.token)
            })
            .await;
        let Some(response) = response else { return };
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or_default();
        if status == 200 && answer["available"] == available {
            self.seen.lock().unwrap().answered += 1;
        } else {
            self.fail(format!("availability of {email}: {status} {answer}"));
        }
    }

    /// One round of `worker`: a synchronous creation, an asynchronous one, and two RPC calls
    /// (about the first user, taken by now, and about one that does not exist).
    async fn round(&self, worker: usize, round: usize) {
        let (taken, queued) = (
            format!("sync-{worker}-{round}@replicas.example.com"),
            format!("async-{worker}-{round}@replicas.example.com"),
        );
        self.create(&taken, false).await;
        self.create(&queued, true).await;
        if self.seen.lock().unwrap().created.contains_key(&taken) {
            self.check(&taken, false).await;
        }
        self.check(
            &format!("nobody-{worker}-{round}@replicas.example.com"),
            true,
        )
        .await;
    }

    /// `workers` clients, each doing rounds until `stop` (or `rounds` of them).
    async fn run(&self, workers: usize, rounds: usize, stop: Arc<AtomicBool>) {
        let tasks: Vec<_> = (0..workers)
            .map(|worker| {
                let (load, stop) = (self.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    for round in 0..rounds {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        load.round(worker, round).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

/// Waits until every user `created` is stored, announced and published, then checks that each
/// was so exactly once, and nothing else was.
async fn assert_each_once(
    replicas: &Replicas,
    created: &BTreeSet<String>,
) -> BTreeMap<String, i64> {
    let environment = &replicas.environment;
    let database = sqlx::PgPool::connect(&environment.database.url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT email, id FROM users")
            .fetch_all(&database)
            .await
            .unwrap();
        let announced = environment.webhook.delivered().len();
        if rows.len() >= created.len() && announced >= created.len() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, {} of {} users stored and {announced} announced",
            rows.len(),
            created.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Whatever was still to come has come.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let emails: Vec<&String> = stored.iter().map(|(email, _)| email).collect();
    assert_eq!(
        emails.len(),
        created.len(),
        "users stored twice or unasked for"
    );
    assert_eq!(
        emails.into_iter().cloned().collect::<BTreeSet<_>>(),
        *created
    );

    let mut announcements: BTreeMap<String, usize> = BTreeMap::new();
    for body in environment.webhook.delivered() {
        *announcements
            .entry(body["text"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = created
        .iter()
        .map(|email| (format!("User {email} created"), 1))
        .collect();
    assert_eq!(announcements, expected, "each user announced once");

    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    let channel = environment.vhost.channel().await;
    while let Some(message) = channel
        .basic_get(PUBLISHED.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        *published
            .entry(event["user"]["email"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> =
        created.iter().map(|email| (email.clone(), 1)).collect();
    assert_eq!(published, expected, "each outbox row published once");
    stored.into_iter().collect()
}

#[tokio::test]
async fn two_of_every_process_store_publish_announce_and_feed_each_user_once() {
    let replicas = Replicas::start().await;
    let mut feeds = Vec::new();
    for gateway in replicas.gateways() {
        for _ in 0..3 {
            feeds.push((
                gateway.clone(),
                FeedClient::connect(
                    &gateway,
                    &replicas.environment.token("feed"),
                    "?types=user.created",
                )
                .await,
            ));
        }
    }
    // Every feed's queue is bound before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The clients read as the load runs, as real ones do.
    let load = Load::new(&replicas);
    let events = 4 * 15 * 2;
    let ((), received) = tokio::join!(
        load.run(4, 15, Arc::default()),
        futures_util::future::join_all(
            feeds
                .iter_mut()
                .map(|(_, feed)| feed.frames(events, Duration::from_secs(60)))
        )
    );
    let created: BTreeSet<String> = {
        let seen = load.seen();
        assert_eq!(seen.failures, Vec::<String>::new());
        assert_eq!(seen.created.len(), events);
        assert!(
            seen.answered >= 4 * 15,
            "{} RPC calls answered",
            seen.answered
        );
        seen.created.keys().cloned().collect()
    };
    let stored = assert_each_once(&replicas, &created).await;

    for ((gateway, feed), frames) in feeds.iter_mut().zip(received) {
        let mut ids: Vec<i64> = frames
            .iter()
            .map(|frame| {
                assert_eq!(frame["type"], "user.created", "{frame}");
                let email = frame["user"]["email"].as_str().unwrap();
                assert_eq!(frame["user"]["id"], stored[email], "{frame}");
                frame["user"]["id"].as_i64().unwrap()
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            created.len(),
            "a client of {gateway} saw an event twice"
        );
        assert_eq!(
            feed.next_frame(Duration::from_millis(500)).await,
            None,
            "a client of {gateway} saw more events than there were"
        );
    }

    let ids = replicas.instance_ids().await;
    let distinct: BTreeSet<&String> = ids.values().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "replicas share an instance id: {ids:?}"
    );
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_duplicates_and_fails_nothing() {
    let mut replicas = Replicas::start().await;
    let load = Load::new(&replicas);
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn({
        let (load, stop) = (load.clone(), Arc::clone(&stop));
        async move { load.run(3, usize::MAX, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for service in SERVICES {
        for replica in 0..2 {
            replicas.restart(service, replica).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    running.await.unwrap();

    let created: BTreeSet<String> = {
        let seen = load.seen();
        assert_eq!(
            seen.failures,
            Vec::<String>::new(),
            "{} retried",
            seen.retried
        );
        assert!(
            seen.created.len() >= 20,
            "only {} users created",
            seen.created.len()
        );
        eprintln!(
            "rolling restart of 10 replicas: {} users created, {} RPC calls answered, {} \
             requests sent again on the other gateway",
            seen.created.len(),
            seen.answered,
            seen.retried
        );
        seen.created.keys().cloned().collect()
    };
    assert_each_once(&replicas, &created).await;
}

/// Polls `url` until it answers `status`, within `within`.
async fn until_status(url: &str, status: u16, within: Duration) -> Duration {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status() == status
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_replica_cut_from_its_database_or_broker_is_not_ready_within_a_probe_period() {
    // The manifests' readiness probe: every 5 s.
    const PERIOD: Duration = Duration::from_secs(5);
    let environment = Environment::new().await;
    let postgres = TcpProxy::start(&test_support::postgres::server_address());
    let rabbitmq = TcpProxy::start("127.0.0.1:5672");
    let redis = TcpProxy::start("127.0.0.1:6379");
    let cases: [(&str, &[(&str, &TcpProxy)]); 5] = [
        ("user", &[("postgres", &postgres)]),
        (
            "user-queue",
            &[("postgres", &postgres), ("rabbitmq", &rabbitmq)],
        ),
        ("slack", &[("redis", &redis)]),
        ("slack-queue", &[("redis", &redis), ("rabbitmq", &rabbitmq)]),
        ("gateway", &[("rabbitmq", &rabbitmq)]),
    ];
    let mut variables: BTreeMap<&str, String> = environment.variables().into_iter().collect();
    variables.insert(
        "DATABASE_URL",
        environment
            .database
            .url_via(&postgres.address().to_string()),
    );
    variables.insert(
        "AMQP_URL",
        environment
            .vhost
            .amqp_url_via(&rabbitmq.address().to_string()),
    );
    variables.insert("REDIS_URL", format!("redis://{}", redis.address()));
    variables.insert("OTEL_TRACES_EXPORTER", "none".into());
    let variables: Vec<(&str, String)> = variables.into_iter().collect();
    let mut processes = Vec::new();
    for (service, _) in &cases {
        let mut process =
            ServiceProcess::spawn_with(env!("CARGO_BIN_EXE_stack"), &[service], &variables);
        let port = environment
            .ports()
            .into_iter()
            .find(|(name, _)| name == service)
            .unwrap()
            .1;
        process
            .wait_until_ready(&format!("{}/health/ready", Environment::url(port)))
            .await;
        processes.push(process);
    }
    for (service, dependencies) in cases {
        let port = environment
            .ports()
            .into_iter()
            .find(|(name, _)| *name == service)
            .unwrap()
            .1;
        let ready = format!("{}/health/ready", Environment::url(port));
        for (dependency, proxy) in dependencies {
            proxy.cut();
            let after = until_status(&ready, 503, PERIOD).await;
            let answer: Value = reqwest::get(&ready).await.unwrap().json().await.unwrap();
            assert!(
                answer["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(dependency),
                "{service} without {dependency}: {answer}"
            );
            proxy.restore();
            let back = until_status(&ready, 200, Duration::from_secs(20)).await;
            eprintln!(
                "{service} without {dependency}: not ready after {after:?}, ready {back:?} after it came back"
            );
        }
    }
}
