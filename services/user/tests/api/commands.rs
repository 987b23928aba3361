//! user-queue: `create_user` commands go through the same path as `POST /user`; bad ones go to
//! the dead-letter queue with their reason.

use std::time::Duration;

use contract::commands::CreateUser;
use lapin::BasicProperties;
use serde_json::{Value, json};
use test_support::rabbitmq::header;

use crate::helpers::{EVENTS, TestApp, spawn_app, spawn_user_queue, unique_email};

const DEAD: &str = "user-queue.commands.dead";

/// Publishes `command` as the gateway does.
async fn send(app: &TestApp, command: &CreateUser) {
    app.vhost
        .publish(
            "user-commands",
            "create_user",
            &serde_json::to_vec(command).unwrap(),
            BasicProperties::default().with_message_id(command.id.to_string().into()),
        )
        .await;
}

#[tokio::test]
async fn a_create_user_command_creates_the_user_and_its_event() {
    let app = spawn_app().await;
    let queue = spawn_user_queue(&app).await;
    app.observe_user_events().await;
    let email = unique_email();
    let command = CreateUser::new("queued", email.clone());
    send(&app, &command).await;

    let event = app
        .vhost
        .get(EVENTS, Duration::from_secs(15))
        .await
        .expect("the user.created event of the command's user");
    let event: Value = serde_json::from_slice(&event.delivery.data).unwrap();
    assert_eq!(event["user"]["email"], email);
    let id = event["user"]["id"].as_i64().unwrap();
    let user: Value = app.get(&format!("/user/{id}")).await.json().await.unwrap();
    assert_eq!(user["name"], "queued");
    queue.stop().await;
}

#[tokio::test]
async fn invalid_commands_are_dead_lettered_with_their_reason() {
    let app = spawn_app().await;
    let queue = spawn_user_queue(&app).await;
    let taken = unique_email();
    app.create_user("first", &taken).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"name=foo".to_vec(), "not JSON"),
        ("not an object", b"[1,2]".to_vec(), "not a JSON object"),
        (
            "unknown type",
            json!({"type": "delete_user"}).to_string().into_bytes(),
            "unknown command type",
        ),
        (
            "invalid fields",
            json!({"type": "create_user", "name": "", "email": "bar"})
                .to_string()
                .into_bytes(),
            "#/name must not be empty; #/email is not a valid email address",
        ),
        (
            "duplicate email",
            json!({"type": "create_user", "name": "second", "email": taken})
                .to_string()
                .into_bytes(),
            "conflict",
        ),
    ];
    for (case, body, reason) in cases {
        app.vhost
            .publish(
                "user-commands",
                "create_user",
                &body,
                BasicProperties::default(),
            )
            .await;
        let dead = app
            .vhost
            .get(DEAD, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{case}: not dead-lettered"));
        assert_eq!(dead.delivery.data, body, "{case}: the body is kept");
        let got = header(&dead, "x-reason").unwrap_or_else(|| panic!("{case}: no x-reason"));
        assert!(got.contains(reason), "{case}: {got}");
    }
    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert_eq!(users.len(), 1, "no invalid command wrote a user");
    queue.stop().await;
}

#[tokio::test]
async fn a_command_delivered_twice_creates_one_user_and_one_event_and_no_dead_letter() {
    let app = spawn_app().await;
    let queue = spawn_user_queue(&app).await;
    app.observe_user_events().await;
    let email = unique_email();
    let command = CreateUser::new("twice", email.clone());
    for _ in 0..2 {
        send(&app, &command).await;
    }
    let event = app
        .vhost
        .get(EVENTS, Duration::from_secs(15))
        .await
        .expect("the user.created event");
    let event: Value = serde_json::from_slice(&event.delivery.data).unwrap();
    assert_eq!(event["user"]["email"], email);
    assert_eq!(
        event["id"],
        command.id.to_string(),
        "the event has the command's id"
    );
    // The second delivery found the first one's user: no conflict, no second event.
    assert!(
        app.vhost.get(DEAD, Duration::from_secs(2)).await.is_none(),
        "the second delivery was dead-lettered"
    );
    assert!(
        app.vhost
            .get(EVENTS, Duration::from_millis(500))
            .await
            .is_none(),
        "a second event"
    );
    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert_eq!(users.len(), 1);
    queue.stop().await;
}
