//! The steps of the features, one module per subject.

mod answers;
mod auth;
mod health;
mod tracing;
mod users;

use cucumber::gherkin::Step;

/// The first column of the step's table: the names a step lists.
fn listed(step: &Step) -> Vec<&str> {
    step.table
        .as_ref()
        .expect("the step lists its names in a table")
        .rows
        .iter()
        .map(|row| row[0].as_str())
        .collect()
}
