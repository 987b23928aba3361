//! The page, in a real headless browser: Debian's Chromium driven by playwright-core
//! (`services/gateway/tests/browser/page.test.mjs`) against the launcher, whose spans go to an
//! in-test Zipkin. The driver creates a user by filling the form and clicking **Create user**,
//! sees it in the live list within 2 s, checks the trace link against the page's own
//! `traceparent` and the gateway's `x-trace-id`, the spans the page exports, a taken email
//! before submitting, a field error by its field, the phone width, the keyboard and the fault
//! panel with an admin token pasted, with no console error; here, Zipkin must hold that trace
//! with the page's click as its root. Screenshots go to `target/screenshots/`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use contract::tokens::{ADMIN_ROLE, Claims, DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};
use serde_json::Value;
use test_support::zipkin::{find, service};

mod common;
use common::{Environment, repository};

#[tokio::test]
async fn a_user_created_in_the_browser_is_one_trace_from_the_click_to_the_live_list() {
    let browser = repository().join("services/gateway/tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix services/gateway/tests/browser` \
         (scripts/test does), and `apt-get install chromium` for the browser"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: `apt-get install -y chromium chromium-driver` (scripts/test does)"
    );
    let environment = Environment::new().await;
    // The gateway runs on its development secret here, so the page gets its own token.
    let variables: Vec<(&str, String)> = environment
        .variables()
        .into_iter()
        .filter(|(name, _)| *name != "JWT_SECRET")
        .collect();
    let stack = environment.launch(&variables).await;
    let screenshots = repository().join("target/screenshots");
    let gateway = Environment::url(environment.gateway_port);
    // What `mint-token --admin` prints for this gateway, pasted into the fault panel.
    let admin_token = contract::tokens::sign(
        &Claims::new("page-test", DEFAULT_AUDIENCE, Duration::from_secs(600))
            .with_roles(&[ADMIN_ROLE]),
        DEVELOPMENT_SECRET,
    );
    let driver = {
        let (browser, gateway, screenshots) =
            (browser.clone(), gateway.clone(), screenshots.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg("page.test.mjs")
                .current_dir(&browser)
                .env("GATEWAY_URL", &gateway)
                .env("ADMIN_TOKEN", &admin_token)
                .env("SCREENSHOT_DIR", &screenshots)
                .output()
                .unwrap_or_else(|error| panic!("node cannot run ({error}): install Node.js 20"))
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&driver.stdout);
    let stderr = String::from_utf8_lossy(&driver.stderr);
    assert!(
        driver.status.success(),
        "the browser test failed:\n{stderr}\n{stdout}"
    );
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no report from the browser test:\n{stdout}\n{stderr}"));
    assert_eq!(report["ok"], true);
    let trace = report["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(trace.len(), 32);
    let root_id = report["root_span_id"].as_str().unwrap().to_owned();
    let client_id = report["client_span_id"].as_str().unwrap().to_owned();
    for shot in report["screenshots"].as_array().unwrap() {
        assert!(Path::new(shot.as_str().unwrap()).is_file(), "{shot}");
    }

    // The trace the page started, as Zipkin received it: the click, its POST /user through the
    // gateway, the user service, and the live feed's push back to the page.
    let spans = environment
        .zipkin
        .wait_for(Duration::from_secs(10), "the page's trace", |spans| {
            let trace: Vec<&Value> = spans
                .iter()
                .filter(|s| s["traceId"] == trace.as_str())
                .collect();
            trace.iter().any(|s| s["id"] == root_id.as_str())
                && trace.iter().any(|s| {
                    s["kind"] == "SERVER" && service(s) == "gateway" && s["name"] == "post /user"
                })
                && trace
                    .iter()
                    .any(|s| s["kind"] == "SERVER" && service(s) == "user")
                && trace.iter().any(|s| s["name"] == "send user.created")
        })
        .await;
    let clicked: Vec<Value> = spans
        .into_iter()
        .filter(|s| s["traceId"] == trace.as_str())
        .collect();
    let root = find(&clicked, "the page's root span", |s| {
        s["id"] == root_id.as_str()
    });
    assert_eq!(service(root), "frontend", "{root}");
    assert_eq!(root["name"], "click create user", "{root}");
    assert!(
        root.get("parentId").is_none(),
        "the click is the root: {root}"
    );
    assert_eq!(root["tags"]["frontend.action"], "create_user", "{root}");
    assert_eq!(root["tags"]["frontend.outcome"], "ok", "{root}");
    assert!(
        root["annotations"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["value"] == "feed frame received")),
        "the feed frame's arrival is on the root: {root}"
    );
    let client = find(&clicked, "the page's POST /user", |s| {
        s["id"] == client_id.as_str()
    });
    assert_eq!(service(client), "frontend", "{client}");
    assert_eq!(client["kind"], "CLIENT", "{client}");
    assert_eq!(
        client["parentId"], root_id,
        "the POST is the click's child: {client}"
    );
    let gateway_span = find(&clicked, "the gateway's POST /user", |s| {
        s["kind"] == "SERVER" && service(s) == "gateway"
    });
    assert_eq!(
        gateway_span["parentId"], client_id,
        "the gateway continued the page's CLIENT span: {gateway_span}"
    );
    let ids: Vec<&Value> = clicked.iter().map(|s| &s["id"]).collect();
    for span in &clicked {
        if let Some(parent) = span.get("parentId") {
            assert!(ids.contains(&parent), "a dangling parent: {span}");
        }
    }
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}
