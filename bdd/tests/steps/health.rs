//! Steps about whether the stack is up: the gateway's ping and its health report.

use cucumber::gherkin::Step;
use cucumber::{then, when};

use crate::world::StackWorld;

#[when("I ping the gateway")]
async fn i_ping_the_gateway(world: &mut StackWorld) {
    world.get("/ping").await;
}

#[then(expr = "the answer says {string}")]
fn the_answer_says(world: &mut StackWorld, response: String) {
    let answer = world.answer();
    assert_eq!(
        answer.json()["response"],
        response.as_str(),
        "the answer was:\n{answer}"
    );
}

#[when("I ask the gateway how the stack is")]
async fn i_ask_how_the_stack_is(world: &mut StackWorld) {
    world.get("/health").await;
}

#[then("the health report lists exactly these services:")]
fn the_health_report_lists(world: &mut StackWorld, step: &Step) {
    let answer = world.answer();
    let mut expected = super::listed(step);
    expected.sort_unstable();
    let report = answer.json();
    let mut listed: Vec<&str> = report
        .as_object()
        .unwrap_or_else(|| panic!("the health report is not an object:\n{answer}"))
        .keys()
        .map(String::as_str)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, expected, "the answer was:\n{answer}");
}

#[then(expr = "every service in the health report answered {string} and said how long it took")]
fn every_service_answered(world: &mut StackWorld, response: String) {
    let answer = world.answer();
    let report = answer.json();
    for (service, health) in report.as_object().into_iter().flatten() {
        assert_eq!(
            health["response"],
            response.as_str(),
            "{service} did not answer {response}:\n{answer}"
        );
        assert!(
            health["time"].is_u64(),
            "{service} has no time in milliseconds:\n{answer}"
        );
    }
}
