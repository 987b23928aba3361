//! Hostile input against the running stack: bad bodies, odd paths and methods, and malformed
//! trace headers on every public endpoint get a clear 4xx (or are ignored), never a 5xx, a crash
//! or a hang; secrets never reach a log line, a span, a metric or an error body; a flood of
//! distinct paths adds no metric series.

use std::time::{Duration, Instant};

use serde_json::json;
use test_support::ServiceProcess;

mod common;
use common::Environment;

async fn start(environment: &Environment, extra: &[(&'static str, String)]) -> ServiceProcess {
    let mut variables = environment.variables();
    variables.extend(extra.iter().cloned());
    environment.launch(&variables).await
}

#[tokio::test]
async fn bad_input_on_every_endpoint_is_a_clear_4xx_never_a_5xx_or_a_hang() {
    let environment = Environment::new().await;
    let stack = start(&environment, &[]).await;
    let token = environment.token("hostile");
    // A connection each request: a server that refuses a body over its limit answers 413 and
    // closes the connection, which must not fail the next request on a reused one.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Deep, yet under the 16 KiB limit, so that the parser meets it.
    let nested = format!("{}{}", "[".repeat(8000), "]".repeat(8000));
    let huge = format!(
        r#"{{"name": "{}", "email": "huge@example.com"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let bodies: Vec<(&str, String, &str)> = vec![
        ("malformed JSON", "{\"name\": ".into(), "application/json"),
        (
            "wrong types",
            json!({"name": 1, "email": ["a"]}).to_string(),
            "application/json",
        ),
        ("a huge body", huge, "application/json"),
        ("deeply nested JSON", nested, "application/json"),
        (
            "NUL bytes",
            json!({"name": "a\u{0}b", "email": "nul\u{0}@example.com"}).to_string(),
            "application/json",
        ),
        (
            "SQL-looking strings",
            json!({"name": "'; DROP TABLE users; --", "email": "x'--@example.com"}).to_string(),
            "application/json",
        ),
        (
            "unicode and emoji",
            json!({"name": "Zoë 🦀 李", "email": "zoë@exämple.de"}).to_string(),
            "application/json",
        ),
        (
            "a form body",
            "name=foo&email=bar".into(),
            "application/x-www-form-urlencoded",
        ),
        (
            "XML",
            "<user><name>foo</name></user>".into(),
            "application/xml",
        ),
        ("an empty body", String::new(), "application/json"),
        (
            "invalid UTF-8",
            String::from_utf8_lossy(&[0xff, 0xfe, 0xfd]).into_owned(),
            "application/json",
        ),
    ];
    let gateway = Environment::url(environment.gateway_port);
    let targets = [
        (format!("{gateway}/user"), true),
        (
            format!("{}/user", Environment::url(environment.user_port)),
            false,
        ),
        (
            format!("{}/", Environment::url(environment.slack_port)),
            false,
        ),
    ];
    let hostile_headers = [
        ("traceparent", "00-zz-yy-01".to_owned()),
        ("traceparent", "x".repeat(7000)),
        ("b3", "not-a-b3-header".to_owned()),
        ("tracestate", ",,=,=;".repeat(1000)),
        ("baggage", "%%%;;==".repeat(1000)),
        ("x-b3-traceid", "ZZZZ".to_owned()),
    ];
    let mut failures = Vec::new();
    for (url, authenticated) in &targets {
        for (case, body, content_type) in &bodies {
            for (header, value) in &hostile_headers {
                let mut request = client
                    .post(url)
                    .header("content-type", *content_type)
                    .header(*header, value)
                    .body(body.clone());
                if *authenticated {
                    request = request.bearer_auth(&token);
                }
                let started = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_server_error() => {
                        failures.push(format!("{url} {case} {header}: {}", response.status()))
                    }
                    Ok(_) => {}
                    // A body over the limit is answered 413 before the client has sent it all,
                    // and the connection closed: the client may see the reset instead.
                    Err(error) if body.len() > 16 * 1024 && error.is_request() => {}
                    Err(error) => {
                        failures.push(format!("{url} {case} {header}: no answer ({error})"))
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{url} {case}: a hang"
                );
            }
        }
    }
    let odd_requests: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::PUT, format!("{gateway}/user")),
        (reqwest::Method::DELETE, format!("{gateway}/users")),
        (reqwest::Method::PATCH, format!("{gateway}/user/1")),
        (
            reqwest::Method::GET,
            format!("{gateway}/user/99999999999999999999999"),
        ),
        (reqwest::Method::GET, format!("{gateway}/user/%00")),
        (
            reqwest::Method::GET,
            format!("{gateway}/user/..%2F..%2Fetc%2Fpasswd"),
        ),
        (
            reqwest::Method::GET,
            format!("{gateway}/users?limit=abc&before=-1"),
        ),
        (
            reqwest::Method::GET,
            format!("{gateway}/users?limit=%F0%9F%A6%80"),
        ),
        (reqwest::Method::GET, format!("{gateway}/messages?channel=")),
        (
            reqwest::Method::GET,
            format!("{gateway}/messages?channel=%00&limit=1e9"),
        ),
        (reqwest::Method::GET, format!("{gateway}/messages")),
        (
            reqwest::Method::GET,
            format!("{gateway}/{}", "a/".repeat(2000)),
        ),
    ];
    for (method, url) in odd_requests {
        for (header, value) in &hostile_headers {
            match client
                .request(method.clone(), &url)
                .header(*header, value)
                .send()
                .await
            {
                Ok(response) if response.status().is_server_error() => {
                    failures.push(format!("{method} {url} {header}: {}", response.status()))
                }
                Ok(_) => {}
                Err(error) => {
                    failures.push(format!("{method} {url} {header}: no answer ({error})"))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "5xx or no answer:\n{}",
        failures.join("\n")
    );
    let health = client
        .get(format!("{gateway}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "every process is still up");
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_span_a_metric_or_an_error_body() {
    const JWT_SECRET: &str = "jwt-Secret-4d2b9e-7f13a0c5-9b2e-4a6d-8c31";
    const DB_PASSWORD: &str = "db-Password-7c1a0f";
    let environment = Environment::new().await;
    let database_url =
        environment
            .database
            .url()
            .replacen("postgres@", &format!("postgres:{DB_PASSWORD}@"), 1);
    let stack = start(
        &environment,
        &[
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("DATABASE_URL", database_url),
            ("LOG_FORMAT", "json".to_owned()),
            (
                "RUST_LOG",
                "debug,h2=info,hyper=info,lapin=info,amq_protocol=info".to_owned(),
            ),
        ],
    )
    .await;
    let webhook_path = "T000/B000/XXXX";
    let client = reqwest::Client::new();
    let gateway = Environment::url(environment.gateway_port);
    let token = contract::tokens::mint(
        JWT_SECRET,
        "secretive",
        contract::tokens::DEFAULT_AUDIENCE,
        Duration::from_secs(300),
    );
    let mut bodies = Vec::new();
    for request in [
        client
            .post(format!("{gateway}/user"))
            .bearer_auth(&token)
            .json(&json!({"name": "secretive", "email": "secretive@example.com"})),
        client
            .post(format!("{gateway}/user"))
            .bearer_auth("not.a.token")
            .json(&json!({})),
        client
            .post(format!("{gateway}/user"))
            .bearer_auth(&token)
            .json(&json!({"name": "", "email": "bad"})),
        client.get(format!("{gateway}/user/424242")),
        client
            .post(format!("{}/", Environment::url(environment.slack_port)))
            .json(&json!({"channel": "#c", "message": "m"})),
    ] {
        bodies.push(request.send().await.unwrap().text().await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while environment.webhook.delivered().len() < 2 {
        assert!(Instant::now() < deadline, "the webhook was not called");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut metrics = String::new();
    for (_, port) in environment.ports() {
        metrics += &client
            .get(format!("{}/metrics", Environment::url(port)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    stack.terminate();
    let exit = stack.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0));
    let spans = serde_json::to_string(&environment.zipkin.spans()).unwrap();
    assert!(
        exit.stdout.contains("\"trace_id\""),
        "the logs were captured"
    );
    for (what, text) in [
        ("logs", &format!("{}{}", exit.stdout, exit.stderr)),
        ("spans", &spans),
        ("metrics", &metrics),
        ("error bodies", &bodies.join("\n")),
    ] {
        for secret in [JWT_SECRET, DB_PASSWORD, webhook_path, token.as_str()] {
            assert!(
                !text.contains(secret),
                "a secret ({secret}) leaked into the {what}"
            );
        }
    }
}

#[tokio::test]
async fn a_flood_of_distinct_paths_adds_no_metric_series() {
    let environment = Environment::new().await;
    let stack = start(&environment, &[]).await;
    let client = reqwest::Client::new();
    let gateway = Environment::url(environment.gateway_port);
    let series = || async {
        let text = client
            .get(format!("{gateway}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with("http_server"))
            .map(|line| line.rsplit_once(' ').map_or(line, |(s, _)| s).to_owned())
            .collect::<Vec<_>>()
    };
    client
        .get(format!("{gateway}/warm/up"))
        .send()
        .await
        .unwrap();
    let before = series().await;
    for n in 0..300 {
        let method = ["GET", "POST", "BREW", "PURGE"][n % 4];
        client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{gateway}/scan/{n}/{}", uuid::Uuid::new_v4()),
            )
            .send()
            .await
            .unwrap();
    }
    let after = series().await;
    let added: Vec<_> = after
        .iter()
        .filter(|series| !before.contains(series))
        .collect();
    // Unknown methods share `_OTHER`; at most the method and status combinations appear.
    assert!(added.len() <= 40, "{} new series: {added:#?}", added.len());
    assert!(
        !after.iter().any(|series| series.contains("/scan/")),
        "a raw path became a label"
    );
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}

/// schemathesis generates requests from the gateway's OpenAPI document (examples, boundaries,
/// fuzzing, stateful sequences): none may get a 5xx, an undocumented status or content type,
/// or a body that breaks its documented schema.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let environment = Environment::new().await;
    let stack = start(
        &environment,
        &[
            ("RATE_LIMIT_PER_SECOND", "100000".to_owned()),
            ("RATE_LIMIT_BURST", "100000".to_owned()),
        ],
    )
    .await;
    let gateway = Environment::url(environment.gateway_port);
    let token = environment.token("schemathesis");
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .args([
                "run",
                &format!("{gateway}/openapi.json"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                "30",
                "--seed",
                "1",
                "-H",
                &format!("Authorization: Bearer {token}"),
            ])
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| {
        panic!("schemathesis cannot run ({error}); install it with `pip install schemathesis`")
    });
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}
