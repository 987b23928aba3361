//! The original's API: `POST /` stores a message in its channel, `GET /messages` lists them.

use serde_json::{Value, json};

use crate::helpers::{Options, Process, spawn};

#[tokio::test]
async fn a_posted_message_is_stored_and_listed_newest_first() {
    let slack = spawn(Process::Api, Options::default()).await;
    let response = slack.post("#user", "User 7 created").await;
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["channel"], "#user");
    assert_eq!(stored["message"], "User 7 created");
    assert_eq!(stored["slack"], "skipped", "no webhook is configured");
    assert!(stored["created_at"].as_str().unwrap().ends_with('Z'));
    for n in 8..=10 {
        slack.post("#user", &format!("User {n} created")).await;
    }
    slack.post("#other", "elsewhere").await;

    let page: Vec<Value> = slack
        .get("/messages?channel=%23user&limit=2&offset=1")
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = page
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["User 9 created", "User 8 created"]);
    let all: Vec<Value> = slack
        .get("/messages?channel=%23user")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["message"], "User 10 created");
    let empty: Vec<Value> = slack
        .get("/messages?channel=%23nobody")
        .await
        .json()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn ping_answers_pong() {
    let slack = spawn(Process::Api, Options::default()).await;
    let response = slack.get("/ping").await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"response": "pong"})
    );
}

#[tokio::test]
async fn bad_input_gets_400_problem_details_and_stores_nothing() {
    let slack = spawn(Process::Api, Options::default()).await;
    let long = "m".repeat(4001);
    let bodies: Vec<(&str, String)> = vec![
        ("empty object", "{}".into()),
        ("missing message", json!({"channel": "#user"}).to_string()),
        (
            "empty channel and message",
            json!({"channel": "", "message": " "}).to_string(),
        ),
        (
            "non-string fields",
            json!({"channel": 1, "message": ["a"]}).to_string(),
        ),
        (
            "over-long message",
            json!({"channel": "#user", "message": long}).to_string(),
        ),
        ("bad JSON", "{\"channel\": ".into()),
        ("not an object", "\"hello\"".into()),
    ];
    let mut answers = Vec::new();
    for (case, body) in bodies {
        let response = slack
            .client
            .post(slack.url("/"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        answers.push(json!({"case": case, "body": response.json::<Value>().await.unwrap()}));
    }
    for (case, path) in [
        ("no channel", "/messages"),
        ("limit too large", "/messages?channel=%23user&limit=101"),
        ("negative offset", "/messages?channel=%23user&offset=-1"),
    ] {
        let response = slack.get(path).await;
        assert_eq!(response.status(), 400, "{case}");
        answers.push(json!({"case": case, "body": response.json::<Value>().await.unwrap()}));
    }
    insta::assert_json_snapshot!(answers);
    assert!(slack.redis.keys().await.is_empty(), "nothing was stored");
}
