//! `Idempotency-Key` on `POST /user`: the same key again answers with the user it created,
//! once stored; another user under a used key is a 422; keys are each client's own.

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::helpers::{TestApp, spawn_app, unique_email};

async fn post(app: &TestApp, key: &str, subject: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/user"))
        .header("idempotency-key", key)
        .json(body);
    if let Some(subject) = subject {
        request = request.header(telemetry::http_server::ENDUSER_HEADER, subject);
    }
    request.send().await.unwrap()
}

/// Users and outbox events stored for `email`.
async fn stored(app: &TestApp, email: &str) -> (i64, i64) {
    let mut database = PgConnection::connect(&app.database.url()).await.unwrap();
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE email = $1), \
                (SELECT count(*) FROM outbox WHERE payload::jsonb -> 'user' ->> 'email' = $1)",
    )
    .bind(email)
    .fetch_one(&mut database)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_same_key_again_answers_the_same_user_stored_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = json!({"name": "Ada", "email": email});
    let first = post(&app, "create-ada-1", None, &body).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();
    let again = post(&app, "create-ada-1", None, &body).await;
    assert_eq!(again.status(), 201, "not a 409");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(stored(&app, &email).await, (1, 1), "one user, one event");

    // Without a key, the same body is the conflict it always was.
    assert_eq!(app.post_user(&body).await.status(), 409);
}

#[tokio::test]
async fn a_used_key_with_another_user_is_a_422_that_stores_nothing() {
    let app = spawn_app().await;
    let (first, second) = (unique_email(), unique_email());
    let created = post(&app, "k-1", None, &json!({"name": "one", "email": first})).await;
    assert_eq!(created.status(), 201);
    for body in [
        json!({"name": "two", "email": second}),
        json!({"name": "renamed", "email": first}),
    ] {
        let reused = post(&app, "k-1", None, &body).await;
        assert_eq!(reused.status(), 422, "{body}");
        let problem: Value = reused.json().await.unwrap();
        assert_eq!(problem["type"], "urn:problem:idempotency-key-reused");
    }
    assert_eq!(stored(&app, &second).await, (0, 0));
    assert_eq!(stored(&app, &first).await, (1, 1));
}

#[tokio::test]
async fn keys_are_each_clients_own() {
    let app = spawn_app().await;
    for subject in ["alice", "bob"] {
        let email = unique_email();
        let response = post(
            &app,
            "same-key",
            Some(subject),
            &json!({"name": subject, "email": email}),
        )
        .await;
        assert_eq!(response.status(), 201, "{subject}");
    }
}

#[tokio::test]
async fn a_malformed_key_is_a_400_that_stores_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    let too_long = "k".repeat(256);
    for key in ["two words", too_long.as_str()] {
        let response = post(&app, key, None, &json!({"name": "x", "email": email})).await;
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
    assert_eq!(stored(&app, &email).await, (0, 0));
}
