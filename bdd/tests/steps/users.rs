//! Steps about users: signing in, creating users at once or in the background, and their
//! announcement in Slack.

use cucumber::{given, then, when};
use serde_json::Value;

use crate::world::{StackWorld, soon};

#[given(expr = "I am signed in as {string}")]
fn i_am_signed_in_as(world: &mut StackWorld, subject: String) {
    world.sign_in(&subject);
}

#[when(expr = "I create a user named {string} with a new email address")]
async fn i_create_a_user(world: &mut StackWorld, name: String) {
    let email = world.new_email();
    world.create_user(&name, &email, false).await;
}

#[when(expr = "I create a user named {string} with the email address {string}")]
async fn i_create_a_user_with_the_email(world: &mut StackWorld, name: String, email: String) {
    world.create_user(&name, &email, false).await;
}

#[given(expr = "a user named {string} exists with a new email address")]
async fn a_user_exists(world: &mut StackWorld, name: String) {
    let email = world.new_email();
    world.create_user(&name, &email, false).await;
    let answer = world.answer();
    assert_eq!(answer.status, 201, "the user was not created:\n{answer}");
}

#[when(expr = "I create a user named {string} with the same email address in capitals")]
async fn i_create_a_user_with_the_email_in_capitals(world: &mut StackWorld, name: String) {
    let email = world.email().to_uppercase();
    world.create_user(&name, &email, false).await;
}

#[when(
    expr = "I ask for a user named {string} with a new email address to be created in the background"
)]
async fn i_ask_for_a_user_in_the_background(world: &mut StackWorld, name: String) {
    let email = world.new_email();
    world.create_user(&name, &email, true).await;
}

/// Whether `users` (a JSON array) holds the user with `email`.
fn lists_user(users: &Value, email: &str) -> bool {
    users
        .as_array()
        .is_some_and(|users| users.iter().any(|user| user["email"] == email))
}

#[then("the answer is the new user, with an id")]
fn the_answer_is_the_new_user(world: &mut StackWorld) {
    let answer = world.answer();
    let user = answer.json();
    assert_eq!(user["email"], world.email(), "the answer was:\n{answer}");
    assert!(
        user["id"].as_i64().is_some_and(|id| id > 0),
        "the user has no id:\n{answer}"
    );
}

#[then("the answer's Location leads to the new user")]
async fn the_location_leads_to_the_new_user(world: &mut StackWorld) {
    let location = world.url(world.answer().header("location"));
    let user = world.fetch(location).await;
    assert_eq!(user.status, 200, "following the Location gave:\n{user}");
    assert_eq!(
        user.json()["email"],
        world.email(),
        "following the Location gave:\n{user}"
    );
}

#[then("the answer's Location is where the new user will be listed")]
fn the_location_is_where_the_user_will_be_listed(world: &mut StackWorld) {
    let location = world.url(world.answer().header("location"));
    let email = location
        .query_pairs()
        .find(|(name, _)| name == "email")
        .map(|(_, email)| email.into_owned());
    assert_eq!(
        (location.path(), email.as_deref()),
        ("/users", Some(world.email())),
        "the Location is {location}"
    );
}

#[then("following the Location soon lists the new user")]
async fn following_the_location_soon_lists_the_new_user(world: &mut StackWorld) {
    let world = &*world;
    let location = &world.url(world.answer().header("location"));
    soon("the new user's listing", || async move {
        let users = world.fetch(location.clone()).await;
        if users.status == 200 && lists_user(&users.json(), world.email()) {
            Ok(())
        } else {
            Err(format!("{location} answered:\n{users}"))
        }
    })
    .await;
}

#[then(expr = "{string} soon appears in the channel {string}")]
async fn the_message_soon_appears(world: &mut StackWorld, message: String, channel: String) {
    let world = &*world;
    let message = &message.replace("<email>", world.email());
    let mut messages = world.url("/messages");
    messages
        .query_pairs_mut()
        .append_pair("channel", &channel)
        .append_pair("limit", "100");
    let (messages, channel) = (&messages, channel.as_str());
    soon(&format!("{message:?} in {channel}"), || async move {
        let answer = world.fetch(messages.clone()).await;
        let posted = answer.status == 200
            && answer.json().as_array().is_some_and(|posted| {
                posted
                    .iter()
                    .any(|post| post["message"] == message.as_str() && post["channel"] == channel)
            });
        if posted {
            Ok(())
        } else {
            Err(format!("{messages} answered:\n{answer}"))
        }
    })
    .await;
}

#[then("no user has that email address")]
async fn no_user_has_that_email_address(world: &mut StackWorld) {
    let mut lookup = world.url("/users");
    lookup.query_pairs_mut().append_pair("email", world.email());
    let users = world.fetch(lookup).await;
    assert_eq!(users.status, 200, "the lookup answered:\n{users}");
    assert!(
        !lists_user(&users.json(), world.email()),
        "the user exists:\n{users}"
    );
}
