//! Steps about any answer of the gateway: its status and its problem details.

use cucumber::then;

use crate::world::StackWorld;

#[then(expr = "the answer is {int}")]
fn the_answer_is(world: &mut StackWorld, status: u16) {
    let answer = world.answer();
    assert_eq!(answer.status.as_u16(), status, "the answer was:\n{answer}");
}

#[then(expr = "the answer is a problem of type {string}")]
fn the_answer_is_a_problem(world: &mut StackWorld, kind: String) {
    let answer = world.answer();
    assert_eq!(
        answer.header("content-type"),
        "application/problem+json",
        "the answer was:\n{answer}"
    );
    assert_eq!(
        answer.json()["type"],
        kind.as_str(),
        "the answer was:\n{answer}"
    );
}

#[then(expr = "the problem names the field {string}")]
fn the_problem_names_the_field(world: &mut StackWorld, field: String) {
    let answer = world.answer();
    let pointer = format!("#/{field}");
    let named = answer.json()["errors"].as_array().is_some_and(|errors| {
        errors
            .iter()
            .any(|error| error["pointer"] == pointer.as_str())
    });
    assert!(named, "no error points at {pointer} in:\n{answer}");
}
