//! Steps about who may write: callers without a token, or with a token the gateway does not
//! trust, and the challenge the gateway answers them with.

use cucumber::{given, then, when};

use crate::world::StackWorld;

#[given("I am not signed in")]
fn i_am_not_signed_in(world: &mut StackWorld) {
    world.sign_out();
}

#[given("I hold a token signed with a key the gateway does not know")]
fn i_hold_a_foreign_token(world: &mut StackWorld) {
    world.sign_in_with("a-secret-the-gateway-does-not-know", "mallory");
}

#[when("I list the users")]
async fn i_list_the_users(world: &mut StackWorld) {
    world.get("/users").await;
}

#[then("the answer asks for a bearer token")]
fn the_answer_asks_for_a_bearer_token(world: &mut StackWorld) {
    let answer = world.answer();
    assert!(
        answer.header("www-authenticate").starts_with("Bearer "),
        "the answer was:\n{answer}"
    );
}

#[then("the answer asks for a bearer token, saying the token is not valid")]
fn the_answer_says_the_token_is_not_valid(world: &mut StackWorld) {
    let answer = world.answer();
    let challenge = answer.header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "the answer was:\n{answer}"
    );
}
