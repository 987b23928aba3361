//! Latency of the running stack, one request at a time: `POST /user` and `GET /user/{id}`
//! through the gateway and straight to the user service (the difference is the gateway's own
//! cost), `GET /ping` on both, the gateway's `GET /health`, which asks every process, and the
//! RPC `users.email_available`: through the gateway (`GET /users/availability`) and called
//! directly on AMQP (`AMQP_URL`, the local broker by default).
//!
//! Start the stack first (`cargo run --release -p stack`), then
//! `cargo bench -p benchmarks --bench stack`. `STACK_GATEWAY_URL` and `STACK_USER_URL`
//! (defaults `http://127.0.0.1:8100`, `:8101`) point elsewhere; tokens are minted with
//! `JWT_SECRET`, or the development secret the gateway uses by default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contract::tokens::{DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

fn url(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

fn running_stack(c: &mut Criterion) {
    let gateway = url("STACK_GATEWAY_URL", "http://127.0.0.1:8100");
    let user = url("STACK_USER_URL", "http://127.0.0.1:8101");
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| DEVELOPMENT_SECRET.to_owned());
    let token = contract::tokens::mint(
        &secret,
        "bench",
        DEFAULT_AUDIENCE,
        Duration::from_secs(3600),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = reqwest::Client::new();
    for base in [&gateway, &user] {
        let ready = runtime.block_on(client.get(format!("{base}/ping")).send());
        if ready.is_err() {
            panic!(
                "nothing answers at {base}: start the stack first (`cargo run --release -p stack`), \
                 or set STACK_GATEWAY_URL and STACK_USER_URL"
            );
        }
    }

    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let next = AtomicU64::new(0);
    let create = |base: &str, bearer: Option<&str>| {
        let email = format!(
            "bench-{run}-{}@example.com",
            next.fetch_add(1, Ordering::Relaxed)
        );
        let mut request = client
            .post(format!("{base}/user"))
            .json(&json!({"name": "Bench Mark", "email": email}));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("an answer");
            assert_eq!(response.status(), 201, "POST /user");
            response.json::<Value>().await.expect("a user")
        }
    };
    // Reads through the gateway need a token too; the services behind it take none.
    let get = |url: String| {
        let request = client.get(url).bearer_auth(&token);
        async move {
            let response = request.send().await.expect("an answer");
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.expect("a body")
        }
    };
    let created = runtime.block_on(create(&user, None));
    let id = created["id"].as_i64().expect("an id");

    let mut group = c.benchmark_group("stack");
    group.bench_function("post_user/gateway", |b| {
        b.to_async(&runtime).iter(|| create(&gateway, Some(&token)))
    });
    group.bench_function("post_user/direct", |b| {
        b.to_async(&runtime).iter(|| create(&user, None))
    });
    group.bench_function("get_user/gateway", |b| {
        b.to_async(&runtime)
            .iter(|| get(format!("{gateway}/user/{id}")))
    });
    group.bench_function("get_user/direct", |b| {
        b.to_async(&runtime)
            .iter(|| get(format!("{user}/user/{id}")))
    });
    group.bench_function("ping/gateway", |b| {
        b.to_async(&runtime).iter(|| get(format!("{gateway}/ping")))
    });
    group.bench_function("ping/direct", |b| {
        b.to_async(&runtime).iter(|| get(format!("{user}/ping")))
    });
    group.bench_function("health/gateway", |b| {
        b.to_async(&runtime)
            .iter(|| get(format!("{gateway}/health")))
    });
    let email = created["email"].as_str().expect("an email").to_owned();
    group.bench_function("email_available/gateway", |b| {
        b.to_async(&runtime).iter(|| {
            get(format!(
                "{gateway}/users/availability?email={}",
                email.replace('@', "%40")
            ))
        })
    });
    let rpc = messaging::rpc::RpcClient::new(
        url("AMQP_URL", messaging::DEFAULT_AMQP_URL),
        contract::broker::USER_RPC_QUEUE,
        Duration::from_secs(5),
    );
    let params = contract::rpc::EmailAvailableParams { email };
    group.bench_function("email_available/amqp", |b| {
        b.to_async(&runtime).iter(|| async {
            rpc.call::<_, contract::rpc::EmailAvailability>(
                contract::rpc::methods::EMAIL_AVAILABLE,
                &params,
            )
            .await
            .expect("an answer")
        })
    });
    group.finish();
}

criterion_group!(benches, running_stack);
criterion_main!(benches);
