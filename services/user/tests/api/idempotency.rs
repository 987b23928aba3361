//! `Idempotency-Key` on `POST /user`: the same key again answers with the user it created,
//! once stored; another user under a used key is a 422; keys are each client's own.

use serde_json::{Value, json};

use crate::helpers::{spawn_app, unique_email};

#[tokio::test]
async fn the_same_key_again_answers_the_same_user_stored_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = json!({"name": "Ada", "email": email});
    let first = app.post_user_keyed(&body, "create-ada-1", None).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();
    let again = app.post_user_keyed(&body, "create-ada-1", None).await;
    assert_eq!(again.status(), 201, "not a 409");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let (users, events) = app.stored(&email).await;
    assert_eq!((users.len(), events), (1, 1), "one user, one event");

    // Without a key, the same body is the conflict it always was.
    assert_eq!(app.post_user(&body).await.status(), 409);
}

#[tokio::test]
async fn a_used_key_with_another_user_is_a_422_that_stores_nothing() {
    let app = spawn_app().await;
    let (first, second) = (unique_email(), unique_email());
    let created = app
        .post_user_keyed(&json!({"name": "one", "email": first}), "k-1", None)
        .await;
    assert_eq!(created.status(), 201);
    for body in [
        json!({"name": "two", "email": second}),
        json!({"name": "renamed", "email": first}),
    ] {
        let reused = app.post_user_keyed(&body, "k-1", None).await;
        assert_eq!(reused.status(), 422, "{body}");
        let problem: Value = reused.json().await.unwrap();
        assert_eq!(problem["type"], "urn:problem:idempotency-key-reused");
    }
    let (users, events) = app.stored(&second).await;
    assert_eq!((users.len(), events), (0, 0));
    let (users, events) = app.stored(&first).await;
    assert_eq!((users.len(), events), (1, 1));
}

#[tokio::test]
async fn keys_are_each_clients_own() {
    let app = spawn_app().await;
    for subject in ["alice", "bob"] {
        let body = json!({"name": subject, "email": unique_email()});
        let response = app.post_user_keyed(&body, "same-key", Some(subject)).await;
        assert_eq!(response.status(), 201, "{subject}");
    }
}

#[tokio::test]
async fn a_malformed_key_is_a_400_that_stores_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    let too_long = "k".repeat(256);
    for key in ["two words", too_long.as_str()] {
        let response = app
            .post_user_keyed(&json!({"name": "x", "email": email}), key, None)
            .await;
        assert_eq!(response.status(), 400, "{key}");
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("Idempotency-Key"),
            "{problem}"
        );
    }
    let (users, events) = app.stored(&email).await;
    assert_eq!((users.len(), events), (0, 0));
}
