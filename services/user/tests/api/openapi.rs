//! The OpenAPI document describes the real API.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_openapi_document_matches_the_real_routes() {
    let app = spawn_app().await;
    app.create_user("documented", "documented@example.com")
        .await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    insta::assert_json_snapshot!(document);
    test_support::openapi::assert_operations_answer(
        &app.address,
        &document,
        |operation, request| match operation.method.as_str() {
            "POST" => request.json(&json!({"name": "checked", "email": "checked@example.com"})),
            _ => request,
        },
    )
    .await;
}
