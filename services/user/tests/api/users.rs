//! The user API's behaviour: creation, reading, listing, duplicates.

use serde_json::{Value, json};

use crate::helpers::{spawn_app, unique_email};

#[tokio::test]
async fn creating_a_user_returns_it_with_its_location_and_trace_id() {
    let app = spawn_app().await;
    let response = app
        .post_user(&json!({"name": "  Ada Lovelace ", "email": "ada@example.com"}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let trace_id = response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(trace_id.len(), 32);
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], "ada@example.com");
    assert!(user["id"].as_i64().unwrap() > 0);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(location, format!("/user/{}", user["id"]));

    let fetched = app.get(&location).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.json::<Value>().await.unwrap(), user);
}

#[tokio::test]
async fn ping_answers_pong_as_the_original_did() {
    let app = spawn_app().await;
    let response = app.get("/ping").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"response": "pong"})
    );
}

#[tokio::test]
async fn an_unknown_user_is_404_and_a_non_numeric_id_is_400() {
    let app = spawn_app().await;
    assert_eq!(app.get("/user/987654321").await.status(), 404);
    assert_eq!(app.get("/user/abc").await.status(), 400);
    assert_eq!(app.get("/user/-1").await.status(), 400);
}

#[tokio::test]
async fn a_duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    let email = unique_email();
    app.create_user("first", &email).await;
    let response = app
        .post_user(&json!({"name": "second", "email": email.to_uppercase()}))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert_eq!(users.len(), 1, "no second row was written");
}

#[tokio::test]
async fn two_concurrent_creations_of_one_email_give_one_201_and_one_409() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = json!({"name": "racer", "email": email});
    let (first, second) = tokio::join!(app.post_user(&body), app.post_user(&body));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert_eq!(users.len(), 1);
}

#[tokio::test]
async fn users_are_listed_newest_first_in_bounded_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = app.create_user(&format!("user {n}"), &unique_email()).await;
        ids.push(user["id"].as_i64().unwrap());
    }
    ids.reverse();

    let first = app.get("/users?limit=2").await;
    assert_eq!(first.status(), 200);
    let next = first.headers()["link"].to_str().unwrap().to_owned();
    let page: Vec<Value> = first.json().await.unwrap();
    let page_ids: Vec<i64> = page.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(page_ids, ids[..2]);
    assert_eq!(
        next,
        format!("</users?limit=2&before={}>; rel=\"next\"", ids[1])
    );

    let rest: Vec<Value> = app
        .get(&format!("/users?limit=10&before={}", ids[1]))
        .await
        .json()
        .await
        .unwrap();
    let rest_ids: Vec<i64> = rest.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(rest_ids, ids[2..]);

    let all: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert_eq!(all.len(), 5);
    let one = &all[2];
    let found: Vec<Value> = app
        .get(&format!(
            "/users?email={}",
            one["email"].as_str().unwrap().to_uppercase()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        found,
        std::slice::from_ref(one),
        "looked up by email, whatever its case"
    );
    let none: Vec<Value> = app
        .get("/users?email=nobody%40example.com")
        .await
        .json()
        .await
        .unwrap();
    assert!(none.is_empty());
    for bad in [
        "/users?limit=0",
        "/users?limit=101",
        "/users?limit=ten",
        "/users?before=0",
    ] {
        assert_eq!(app.get(bad).await.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn an_email_look_up_of_what_no_email_can_be_is_a_400_not_a_database_error() {
    let app = spawn_app().await;
    for email in ["%00", "not-an-email", "a%00b%40example.com"] {
        let response = app.get(&format!("/users?email={email}")).await;
        assert_eq!(response.status(), 400, "{email}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["pointer"], "#/email", "{email}");
    }
    app.stop().await;
}
