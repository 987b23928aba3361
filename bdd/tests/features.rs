//! The BDD suite: runs every feature in `bdd/features` with cucumber, as one test, against the
//! stack at `BDD_GATEWAY_URL` or else a stack it starts itself (see `world::stack`).

mod steps;
mod world;

use cucumber::World as _;
use cucumber::writer::Stats as _;

use world::StackWorld;

#[tokio::test]
async fn the_stack_behaves_as_its_features_say() {
    let (target, started) = world::stack::reach_or_start().await;
    target.aim_scenarios_here();
    let summary = StackWorld::cucumber()
        // The test harness's arguments are not cucumber's.
        .with_default_cli()
        .fail_on_skipped()
        .run(concat!(env!("CARGO_MANIFEST_DIR"), "/features"))
        .await;
    drop(started);
    assert!(
        !summary.execution_has_failed(),
        "the features do not hold: {} step(s) failed or were not defined, {} feature file(s) \
         did not parse, {} hook(s) failed (see the report above)",
        summary.failed_steps(),
        summary.parsing_errors(),
        summary.hook_errors()
    );
}
