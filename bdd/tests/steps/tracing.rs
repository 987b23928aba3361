//! Steps about tracing: the trace id the gateway hands back, and the spans Zipkin holds for it.

use std::collections::HashSet;

use cucumber::gherkin::Step;
use cucumber::then;
use serde_json::Value;

use test_support::zipkin::service;

use crate::world::{StackWorld, soon};

#[then("the answer carries its trace id")]
fn the_answer_carries_its_trace_id(world: &mut StackWorld) {
    let trace_id = world.answer().header("x-trace-id").to_owned();
    assert!(
        trace_id.len() == 32
            && trace_id
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
        "x-trace-id is {trace_id:?}, not 32 lower-case hex digits"
    );
    world.follow_trace(&trace_id);
}

#[then("that trace soon holds spans from each of these services:")]
async fn that_trace_soon_holds_spans_from(world: &mut StackWorld, step: &Step) {
    let expected = super::listed(step);
    let (world, expected) = (&*world, &expected);
    let trace_id = world.trace_id();
    soon(
        &format!("spans of trace {trace_id} from {expected:?}"),
        || async move {
            let spans = world.trace_spans().await?;
            let services: HashSet<&str> = spans.iter().map(service).collect();
            if expected.iter().all(|name| services.contains(name)) {
                Ok(())
            } else {
                Err(format!("the trace has spans from {services:?} only"))
            }
        },
    )
    .await;
}

/// Why `spans` are not one tree under a single root span, if they are not: a span whose parent
/// is missing belongs to another tree, or its parent has not been exported yet.
fn why_not_one_tree(spans: &[Value]) -> Option<String> {
    let ids: HashSet<&str> = spans
        .iter()
        .filter_map(|span| span["id"].as_str())
        .collect();
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|span| span["parentId"].is_null())
        .collect();
    let orphans: Vec<&Value> = spans
        .iter()
        .filter(|span| {
            span["parentId"]
                .as_str()
                .is_some_and(|parent| !ids.contains(parent))
        })
        .collect();
    match (roots.as_slice(), orphans.as_slice()) {
        ([_], []) => None,
        _ => Some(format!(
            "{} root span(s) and {} span(s) whose parent is missing, among:\n{}",
            roots.len(),
            orphans.len(),
            serde_json::to_string_pretty(spans).unwrap_or_default()
        )),
    }
}

#[then("every span of that trace soon hangs from one single root span")]
async fn every_span_hangs_from_one_root(world: &mut StackWorld) {
    let world = &*world;
    let trace_id = world.trace_id();
    soon(
        &format!("trace {trace_id} forming one tree"),
        || async move {
            let spans = world.trace_spans().await?;
            match why_not_one_tree(&spans) {
                None => Ok(()),
                Some(reason) => Err(reason),
            }
        },
    )
    .await;
}
