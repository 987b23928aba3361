//! `load`: a fixed number of connections sending one kind of request through the gateway as
//! fast as they are answered (`--scenario`: `post`, users posted with unique emails; `ping`;
//! `get`, one user read again and again; `availability`, the RPC call). A progress line while it
//! runs, a table at the end with the CPU each watched process spent per request (`--cpu
//! NAME=PID`, the process and its descendants), and for `post` the check that matters: every
//! created user's "User <email> created" reached Slack, once. For that, and to count exported
//! spans, it serves stand-ins for Slack and Zipkin that the stack is pointed at (see
//! `benches/run-load.sh`).
//!
//! The CPU is that of the requests' whole work: for `post` the warm-up's announcements are
//! awaited before the measured seconds start, and the measured ones' before they end, so a
//! consumer that falls behind is charged for its backlog, not excused from it. `--pace N` sends
//! at most N requests a second (spread over the connections) instead of as fast as they are
//! answered; `--lag-metrics URL` reads slack-queue's delivery lag histogram before and after and
//! reports the lag of the measured requests' events.
//!
//! ```text
//! load --url http://127.0.0.1:8100 --token "$(mint-token load)" --connections 16 --seconds 20 \
//!      [--warmup 3] [--slack-listen 127.0.0.1:19999] [--collector-listen 127.0.0.1:19411] \
//!      [--label NAME] [--json FILE] [--delivery-timeout 120] [--scenario post] [--pace N] \
//!      [--lag-metrics http://127.0.0.1:9102/metrics] [--cpu gateway=PID --cpu postgres=PID ...]
//! ```
//!
//! `load --url URL --rate 20 [--seconds 600]` is the other mode: a steady mixed load to look
//! at on the dashboards and in Zipkin (see `benchmarks::steady`), until stopped unless
//! `--seconds` says otherwise. Without `--token` (or `TOKEN`) it signs its own with
//! `JWT_SECRET`, or the development secret, as `mint-token` does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use benchmarks::cpu::Watched;
use benchmarks::lag::Histogram;
use benchmarks::report::Tally;
use benchmarks::sinks::{Announced, CollectorSink, SlackSink};
use serde_json::json;

struct Options {
    url: String,
    token: String,
    connections: usize,
    seconds: Option<u64>,
    rate: Option<u64>,
    warmup: u64,
    slack_listen: Option<SocketAddr>,
    collector_listen: Option<SocketAddr>,
    label: String,
    json: Option<String>,
    delivery_timeout: u64,
    scenario: Scenario,
    /// At most this many requests a second, over all connections.
    pace: Option<u64>,
    /// slack-queue's `/metrics`, for the delivery lag.
    lag_metrics: Option<String>,
    cpu: Watched,
}

/// What each request of the fixed mode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Post,
    Ping,
    Get,
    Availability,
}

impl Scenario {
    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "post" => Self::Post,
            "ping" => Self::Ping,
            "get" => Self::Get,
            "availability" => Self::Availability,
            other => {
                return Err(format!(
                    "--scenario {other:?}: expected post, ping, get or availability"
                ));
            }
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Post => "POST /user",
            Self::Ping => "GET /ping",
            Self::Get => "GET /user/{id}",
            Self::Availability => "GET /users/availability",
        }
    }

    fn expected(self) -> u16 {
        match self {
            Self::Post => 201,
            _ => 200,
        }
    }
}

const USAGE: &str = "usage: load --url URL --token TOKEN [--connections 16] [--seconds 20] \
[--warmup 3] [--slack-listen ADDR] [--collector-listen ADDR] [--label NAME] [--json FILE] \
[--delivery-timeout 120] [--scenario post|ping|get|availability] [--pace N] \
[--lag-metrics URL] [--cpu NAME=PID]...\n       \
load --url URL --rate N [--seconds S] [--token TOKEN]";

impl Options {
    /// The fixed mode's measured seconds.
    fn measured_seconds(&self) -> u64 {
        self.seconds.unwrap_or(20)
    }

    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            url: String::new(),
            token: std::env::var("TOKEN").unwrap_or_default(),
            connections: 16,
            seconds: None,
            rate: None,
            warmup: 3,
            slack_listen: None,
            collector_listen: None,
            label: "load".into(),
            json: None,
            delivery_timeout: 120,
            scenario: Scenario::Post,
            pace: None,
            lag_metrics: None,
            cpu: Watched::default(),
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: {value:?} is not a number"))
            };
            let address = || {
                value
                    .parse::<SocketAddr>()
                    .map_err(|_| format!("{flag}: {value:?} is not host:port"))
            };
            match flag.as_str() {
                "--url" => options.url = value.trim_end_matches('/').to_owned(),
                "--token" => options.token = value,
                "--connections" => options.connections = number()?.max(1) as usize,
                "--seconds" => options.seconds = Some(number()?.max(1)),
                "--rate" => options.rate = Some(number()?.max(1)),
                "--warmup" => options.warmup = number()?,
                "--slack-listen" => options.slack_listen = Some(address()?),
                "--collector-listen" => options.collector_listen = Some(address()?),
                "--label" => options.label = value,
                "--json" => options.json = Some(value),
                "--delivery-timeout" => options.delivery_timeout = number()?,
                "--scenario" => options.scenario = Scenario::parse(&value)?,
                "--pace" => options.pace = Some(number()?.max(1)),
                "--lag-metrics" => options.lag_metrics = Some(value),
                "--cpu" => options.cpu.add(&value)?,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if options.rate.is_some() && options.token.is_empty() {
            options.token = own_token();
        }
        if options.url.is_empty() || options.token.is_empty() {
            return Err("--url and --token (or TOKEN) are required".into());
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("load: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("load: {error}");
            ExitCode::from(2)
        }
    }
}

/// A token signed as `mint-token` signs: `JWT_SECRET`, or the development secret.
fn own_token() -> String {
    let secret = std::env::var("JWT_SECRET")
        .ok()
        .filter(|secret| !secret.trim().is_empty())
        .unwrap_or_else(|| contract::tokens::DEVELOPMENT_SECRET.to_owned());
    contract::tokens::mint(
        &secret,
        "load",
        contract::tokens::DEFAULT_AUDIENCE,
        Duration::from_secs(12 * 3600),
    )
}

/// Runs the load and its checks; `Ok(false)` when a request failed or a message is missing.
async fn run(options: Options) -> Result<bool, String> {
    if let Some(rate) = options.rate {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| error.to_string())?;
        let steady = benchmarks::steady::Steady {
            url: options.url,
            token: options.token,
            rate,
            seconds: options.seconds,
        };
        return Ok(steady.run(client).await);
    }
    let (slack, collector) = serve_stand_ins(&options).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.connections)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| error.to_string())?;
    let ping = format!("{}/ping", options.url);
    client.get(&ping).send().await.map_err(|error| {
        format!("the gateway does not answer at {ping} ({error}); start the stack first")
    })?;
    println!(
        "load \"{}\": {} on {}, {} connections, {} s after {} s of warm-up",
        options.label,
        options.scenario.describe(),
        options.url,
        options.connections,
        options.measured_seconds(),
        options.warmup
    );
    let read_id = match options.scenario {
        Scenario::Get => Some(create_one(&options, &client).await?),
        _ => None,
    };
    let measured = drive(&options, &client, read_id, &slack).await?;
    eprintln!();
    let summary = measured
        .tally
        .summary(Duration::from_secs(options.measured_seconds()));
    print!("{summary}");
    let expected = options.scenario.expected().to_string();
    let mut ok = summary.statuses.keys().all(|status| *status == expected);
    let per_request: BTreeMap<String, f64> = measured
        .cpu
        .iter()
        .map(|(name, spent)| {
            (
                name.clone(),
                spent.as_secs_f64() * 1e6 / summary.requests.max(1) as f64,
            )
        })
        .collect();
    for (name, micros) in &per_request {
        println!("  cpu          {name:<12} {micros:>9.1} µs a request");
    }

    let mut delivery = serde_json::Value::Null;
    if let Some(announced) = &measured.announced {
        println!(
            "  slack        {}/{} users announced ({} more than once), {:.1} s after the load",
            announced.arrived,
            measured.created.len(),
            announced.duplicated,
            announced.waited.as_secs_f64()
        );
        ok &= announced.arrived == measured.created.len() && announced.duplicated == 0;
        delivery = json!({"created": measured.created.len(), "arrived": announced.arrived, "duplicated": announced.duplicated, "seconds_after_load": announced.waited.as_secs_f64()});
    }
    let lag = measured.lag.map(|lag| {
        let [p50, p99] = [0.5, 0.99].map(|q| lag.quantile(q).map(|seconds| seconds * 1e3));
        if let (Some(p50), Some(p99)) = (p50, p99) {
            println!(
                "  lag          p50 {p50:.1} ms   p99 {p99:.1} ms   ({} events, commit to handled)",
                lag.count()
            );
        }
        json!({"events": lag.count(), "p50_ms": p50, "p99_ms": p99})
    });
    let spans = options.collector_listen.map(|_| collector.spans());
    if let Some(spans) = spans {
        println!("  spans        {spans} received by the collector stand-in");
    }
    if let Some(path) = &options.json {
        let cpu_seconds: BTreeMap<&String, f64> = measured
            .cpu
            .iter()
            .map(|(name, spent)| (name, spent.as_secs_f64()))
            .collect();
        let line = json!({
            "label": options.label,
            "scenario": options.scenario.describe(),
            "connections": options.connections,
            "pace": options.pace,
            "summary": summary,
            "cpu_seconds": cpu_seconds,
            "cpu_us_per_request": per_request,
            "slack": delivery,
            "lag": lag,
            "spans": spans,
        });
        std::fs::write(path, format!("{line}\n")).map_err(|error| format!("{path}: {error}"))?;
    }
    Ok(ok)
}

/// Starts the Slack and collector stand-ins the options ask for.
async fn serve_stand_ins(options: &Options) -> Result<(SlackSink, CollectorSink), String> {
    let slack = SlackSink::default();
    if let Some(address) = options.slack_listen {
        let sink = slack.clone();
        let listening = tokio::spawn(async move { sink.serve(address).await });
        fail_if_finished(listening, "the Slack stand-in", address).await?;
    }
    let collector = CollectorSink::default();
    if let Some(address) = options.collector_listen {
        let sink = collector.clone();
        let listening = tokio::spawn(async move { sink.serve(address).await });
        fail_if_finished(listening, "the collector stand-in", address).await?;
    }
    Ok((slack, collector))
}

/// Creates the user the `get` scenario reads.
async fn create_one(options: &Options, client: &reqwest::Client) -> Result<i64, String> {
    let email = format!("load-read-{}@example.com", std::process::id());
    let created: serde_json::Value = client
        .post(format!("{}/user", options.url))
        .bearer_auth(&options.token)
        .json(&json!({"name": "Load Test", "email": email}))
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .map_err(|error| format!("cannot create the user to read: {error}"))?
        .json()
        .await
        .map_err(|error| error.to_string())?;
    created["id"]
        .as_i64()
        .ok_or_else(|| format!("the created user has no id: {created}"))
}

/// What the measured seconds gave.
struct Measured {
    tally: Tally,
    /// The emails of the users created in the measured seconds.
    created: Vec<String>,
    /// For `post` with the Slack stand-in: how their announcements arrived.
    announced: Option<Announced>,
    /// The CPU each watched process spent from the measured seconds' start until their work was
    /// done.
    cpu: BTreeMap<String, Duration>,
    /// The delivery lag of the events counted meanwhile, with `--lag-metrics`.
    lag: Option<Histogram>,
}

/// The load itself: the warm-up, then the measured seconds, each followed (for `post` with the
/// Slack stand-in) by the wait for its users' announcements, so the CPU sampled around the
/// measured seconds is their requests' whole work and none of the warm-up's.
async fn drive(
    options: &Options,
    client: &reqwest::Client,
    read_id: Option<i64>,
    slack: &SlackSink,
) -> Result<Measured, String> {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let awaits_slack = options.slack_listen.is_some() && options.scenario == Scenario::Post;
    let delivery_timeout = Duration::from_secs(options.delivery_timeout);
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(Arc::clone(&progress)));
    let phase = |name: &'static str, seconds: u64| Phase {
        options,
        client,
        read_id,
        emails: format!("load-{run_id}-{name}"),
        until: Instant::now() + Duration::from_secs(seconds),
        progress: Arc::clone(&progress),
    };

    let (_, warmed) = phase("warmup", options.warmup).run(false).await?;
    if awaits_slack {
        slack.announcements(&warmed, delivery_timeout).await;
    }
    let lag_before = read_lag(options, client).await?;
    let first = options.cpu.sample();
    let _ = progress.measuring_since.set(Instant::now());
    let (tally, created) = phase("measured", options.measured_seconds())
        .run(true)
        .await?;
    reporter.abort();
    let announced = if awaits_slack {
        Some(slack.announcements(&created, delivery_timeout).await)
    } else {
        None
    };
    let cpu = options.cpu.sample().since(&first);
    let lag = match (read_lag(options, client).await?, lag_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    Ok(Measured {
        tally,
        created,
        announced,
        cpu,
        lag,
    })
}

/// slack-queue's lag histogram now, with `--lag-metrics`.
async fn read_lag(
    options: &Options,
    client: &reqwest::Client,
) -> Result<Option<Histogram>, String> {
    let Some(url) = &options.lag_metrics else {
        return Ok(None);
    };
    let exposition = client
        .get(url)
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .map_err(|error| format!("--lag-metrics {url}: {error}"))?
        .text()
        .await
        .map_err(|error| format!("--lag-metrics {url}: {error}"))?;
    Ok(Some(Histogram::parse(&exposition)))
}

/// One phase of the load: `connections` workers sending the scenario's requests until `until`,
/// each at most at its share of `--pace`.
struct Phase<'a> {
    options: &'a Options,
    client: &'a reqwest::Client,
    read_id: Option<i64>,
    /// The prefix of the emails posted, unique to the run and the phase.
    emails: String,
    until: Instant,
    progress: Arc<Progress>,
}

impl Phase<'_> {
    /// The answers (tallied only when `tallied`) and the emails of the users created.
    async fn run(self, tallied: bool) -> Result<(Tally, Vec<String>), String> {
        let options = self.options;
        let (scenario, read_id, until) = (options.scenario, self.read_id, self.until);
        let period = options
            .pace
            .map(|pace| Duration::from_secs_f64(options.connections as f64 / pace as f64));
        let workers: Vec<_> = (0..options.connections)
            .map(|worker| {
                let client = self.client.clone();
                let (url, token) = (options.url.clone(), options.token.clone());
                let emails = format!("{}-{worker}", self.emails);
                let progress = Arc::clone(&self.progress);
                tokio::spawn(async move {
                    let mut pacing = period.map(|period| {
                        let mut pacing = tokio::time::interval(period);
                        pacing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        pacing
                    });
                    let mut tally = Tally::default();
                    let mut created = Vec::new();
                    for n in 0.. {
                        if let Some(pacing) = &mut pacing {
                            pacing.tick().await;
                        }
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        let email = format!("{emails}-{n}@example.com");
                        let request = match scenario {
                            Scenario::Post => client
                                .post(format!("{url}/user"))
                                .bearer_auth(&token)
                                .json(&json!({"name": "Load Test", "email": email})),
                            Scenario::Ping => client.get(format!("{url}/ping")),
                            Scenario::Get => client
                                .get(format!("{url}/user/{}", read_id.unwrap_or(1)))
                                .bearer_auth(&token),
                            Scenario::Availability => client
                                .get(format!("{url}/users/availability?email={email}"))
                                .bearer_auth(&token),
                        };
                        let status = request
                            .send()
                            .await
                            .map(|response| response.status().as_u16())
                            .unwrap_or(0);
                        if scenario == Scenario::Post && status == 201 {
                            created.push(email);
                        }
                        progress.answered.fetch_add(1, Ordering::Relaxed);
                        if tallied {
                            tally.record(status, now.elapsed());
                            progress.measured.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    (tally, created)
                })
            })
            .collect();
        let mut tally = Tally::default();
        let mut created = Vec::new();
        for worker in workers {
            let (worker_tally, worker_created) = worker.await.map_err(|error| error.to_string())?;
            tally.merge(&worker_tally);
            created.extend(worker_created);
        }
        Ok((tally, created))
    }
}

/// A listener that ended within a moment could not bind.
async fn fail_if_finished(
    listening: tokio::task::JoinHandle<std::io::Result<()>>,
    what: &str,
    address: SocketAddr,
) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    if listening.is_finished() {
        let outcome = listening.await.map_err(|error| error.to_string())?;
        return Err(format!("{what} cannot listen on {address}: {outcome:?}"));
    }
    Ok(())
}

/// Requests answered so far, for the progress line.
#[derive(Default)]
struct Progress {
    /// Every request, warm-up included: the rate.
    answered: AtomicU64,
    /// Those of the measured seconds: the count that the final table measures.
    measured: AtomicU64,
    /// When the measured seconds began.
    measuring_since: OnceLock<Instant>,
}

/// One line a second on stderr, rewritten in place: the phase, the requests answered in it,
/// and the last second's rate.
async fn report_progress(progress: Arc<Progress>) {
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut previous = 0;
    loop {
        every.tick().await;
        let answered = progress.answered.load(Ordering::Relaxed);
        let (phase, since, in_phase) = match progress.measuring_since.get() {
            None => ("warm-up", started, answered),
            Some(since) => (
                "measuring",
                *since,
                progress.measured.load(Ordering::Relaxed),
            ),
        };
        eprint!(
            "\r  {phase:<9} {:>4.0} s  {in_phase:>9} requests  {:>7} req/s   ",
            since.elapsed().as_secs_f64(),
            answered - previous
        );
        previous = answered;
    }
}
