//! Faults under load, through proxies each test controls (so tests running in parallel are
//! unaffected): a bounded load of `POST /user` through the gateway while RabbitMQ or Redis goes
//! away and comes back. Every created user must be announced in `#user` exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{ServiceProcess, TcpProxy};
use tokio::sync::Mutex;

mod common;
use common::Environment;

/// The answers of a load: email -> status.
type Answers = Arc<Mutex<BTreeMap<String, u16>>>;

/// `workers` clients posting users with unique emails for `duration`.
async fn load(
    gateway: &str,
    token: &str,
    workers: usize,
    duration: Duration,
) -> BTreeMap<String, u16> {
    let answers: Answers = Arc::default();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (gateway, token, answers) =
                (gateway.to_owned(), token.to_owned(), Arc::clone(&answers));
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut n = 0;
                while Instant::now() < deadline {
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
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(answers).unwrap().into_inner()
}

/// Waits until `#user` holds `expected` messages, then returns how often each text appears.
/// The channel is read in one `LRANGE`: paging through it while messages arrive would count a
/// message twice as the pages shift.
async fn announcements(environment: &Environment, expected: usize) -> BTreeMap<String, usize> {
    let key = format!("{}channel:#user", environment.redis.prefix());
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
    let mut stack = ServiceProcess::spawn(env!("CARGO_BIN_EXE_stack"), &variables);
    for (_, port) in environment.ports() {
        stack
            .wait_until_ready(&format!("{}/health/ready", Environment::url(port)))
            .await;
    }
    stack
}

/// Runs a load while `proxy` is cut for a second in the middle of it, and checks that every
/// created user is announced exactly once.
async fn every_user_is_announced_once_across(environment: &Environment, proxy: &TcpProxy) {
    let gateway = Environment::url(environment.gateway_port);
    let token = environment.token("load");
    let (answers, ()) = tokio::join!(load(&gateway, &token, 8, Duration::from_secs(3)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.restore();
    });
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
    assert!(
        created.len() > 20,
        "a load of {} requests only",
        created.len()
    );

    let counts = announcements(environment, created.len()).await;
    for email in &created {
        let text = format!("User {email} created");
        assert_eq!(counts.get(&text), Some(&1), "{text}");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        created.len(),
        "nothing else was announced"
    );
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
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(30)).await.code, Some(0));
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
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(30)).await.code, Some(0));
}
