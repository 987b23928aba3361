//! The OpenAPI document describes the real API.

use serde_json::{Value, json};

use crate::helpers::{Options, Process, spawn};

#[tokio::test]
async fn the_openapi_document_matches_the_real_routes() {
    let slack = spawn(Process::Api, Options::default()).await;
    let document: Value = slack.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    insta::assert_json_snapshot!(document);
    test_support::openapi::assert_operations_answer(
        &slack.address,
        &document,
        |operation, request| match (operation.method.as_str(), operation.path.as_str()) {
            ("POST", _) => request.json(&json!({"channel": "#docs", "message": "checked"})),
            _ => request,
        },
    )
    .await;
}
