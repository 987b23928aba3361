//! Every bad `POST /user` answers 4xx with a problem-details body naming each failing field,
//! and writes nothing. The bodies are pinned by one insta snapshot.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn bad_user_input_gets_problem_details_and_writes_nothing() {
    let app = spawn_app().await;
    let long_name = "n".repeat(101);
    let huge = format!(
        r#"{{"name": "{}", "email": "big@example.com"}}"#,
        "x".repeat(17 * 1024)
    );
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("empty object", Some("application/json"), "{}".into()),
        (
            "missing name",
            Some("application/json"),
            json!({"email": "a@example.com"}).to_string(),
        ),
        (
            "empty name",
            Some("application/json"),
            json!({"name": " ", "email": "a@example.com"}).to_string(),
        ),
        (
            "too long name",
            Some("application/json"),
            json!({"name": long_name, "email": "a@example.com"}).to_string(),
        ),
        (
            "name with a NUL byte",
            Some("application/json"),
            json!({"name": "a\u{0}b", "email": "a@example.com"}).to_string(),
        ),
        (
            "name of the wrong type",
            Some("application/json"),
            json!({"name": 42, "email": "a@example.com"}).to_string(),
        ),
        (
            "missing email",
            Some("application/json"),
            json!({"name": "foo"}).to_string(),
        ),
        (
            "the original's example email",
            Some("application/json"),
            json!({"name": "foo", "email": "bar"}).to_string(),
        ),
        (
            "null fields",
            Some("application/json"),
            json!({"name": null, "email": null}).to_string(),
        ),
        ("not JSON", Some("application/json"), "name=foo".into()),
        (
            "truncated JSON",
            Some("application/json"),
            r#"{"name": "foo""#.into(),
        ),
        (
            "a JSON array",
            Some("application/json"),
            r#"[{"name": "foo"}]"#.into(),
        ),
        ("a JSON string", Some("application/json"), r#""foo""#.into()),
        (
            "deeply nested JSON",
            Some("application/json"),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        ),
        (
            "wrong content type",
            Some("text/plain"),
            json!({"name": "foo", "email": "a@example.com"}).to_string(),
        ),
        (
            "no content type",
            None,
            json!({"name": "foo", "email": "a@example.com"}).to_string(),
        ),
        ("a body over the limit", Some("application/json"), huge),
    ];
    let mut answers = Vec::new();
    for (case, content_type, body) in cases {
        let mut request = app.client.post(app.url("/user")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{case}: {status}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status, "{case}");
        answers.push(json!({"case": case, "status": status, "body": body}));
    }
    insta::assert_json_snapshot!(answers);

    let users: Vec<Value> = app.get("/users").await.json().await.unwrap();
    assert!(users.is_empty(), "a bad request wrote a row: {users:?}");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let not_found = app.get("/nowhere").await;
    assert_eq!(not_found.status(), 404);
    let method = app.client.delete(app.url("/users")).send().await.unwrap();
    assert_eq!(method.status(), 405);
    let bodies = json!({
        "404": not_found.json::<Value>().await.unwrap(),
        "405": method.json::<Value>().await.unwrap(),
    });
    insta::assert_json_snapshot!(bodies);
}
