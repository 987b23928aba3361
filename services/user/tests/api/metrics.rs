//! `/metrics` exposes the conventional families, with bounded labels.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use serde_json::json;

use crate::helpers::{EVENTS, spawn_app, unique_email};

/// Metric family -> the label keys seen on its samples (values vary; names and keys do not).
fn families(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut families = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap().to_owned();
            families.entry(name).or_insert_with(BTreeSet::new);
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let sample = &line[..name_end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.strip_suffix(suffix))
            .filter(|family| families.contains_key(*family))
            .unwrap_or(sample)
            .to_owned();
        let keys = families.entry(family).or_default();
        if let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) {
            for pair in line[open + 1..close].split("\",") {
                if let Some((key, _)) = pair.split_once('=') {
                    keys.insert(key.trim().to_owned());
                }
            }
        }
    }
    families
}

#[tokio::test]
async fn metrics_expose_the_conventional_families() {
    let app = spawn_app().await;
    app.observe_user_events().await;
    app.create_user("metered", &unique_email()).await;
    // Once the event is out, the relay's metrics exist too.
    app.vhost
        .get(EVENTS, Duration::from_secs(10))
        .await
        .expect("the event is published");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.post_user(&json!({"name": ""})).await;
    app.get("/users").await;
    app.get("/user/1").await;
    app.get("/no/such/path").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let exposition = response.text().await.unwrap();
    insta::assert_json_snapshot!(families(&exposition));

    // Routes are templates and unmatched paths share one label value.
    assert!(exposition.contains(r#"route="/user/{id}""#));
    assert!(exposition.contains(r#"route="unmatched""#));
    assert!(!exposition.contains("/no/such/path"));
    assert!(!exposition.contains("@example.com"));
}

#[tokio::test]
async fn a_flood_of_distinct_paths_adds_no_series() {
    let app = spawn_app().await;
    // The series of request metrics (names and labels, not values).
    let http_series = || async {
        let exposition = app.get("/metrics").await.text().await.unwrap();
        exposition
            .lines()
            .filter(|line| line.starts_with("http_server"))
            .map(|line| {
                line.rsplit_once(' ')
                    .map_or(line, |(series, _)| series)
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    app.get("/first/unknown").await;
    let before = http_series().await;
    for n in 0..50 {
        app.get(&format!("/scan/{n}/{}", unique_email())).await;
    }
    assert_eq!(http_series().await, before);
}
