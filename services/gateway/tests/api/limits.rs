//! Rate limits per client and CORS for a browser frontend.

use crate::helpers::{echo, spawn_gateway};

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let user = echo().await;
    let gateway = spawn_gateway(&[
        ("USER_URL", user.url.clone()),
        ("RATE_LIMIT_PER_SECOND", "1".to_owned()),
        ("RATE_LIMIT_BURST", "3".to_owned()),
    ])
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = gateway
            .client
            .get(gateway.url("/user/1"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Metrics are never limited.
    assert_eq!(
        gateway
            .client
            .get(gateway.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_browser_preflight_is_answered() {
    let gateway =
        spawn_gateway(&[("CORS_ALLOWED_ORIGINS", "http://localhost:3000".to_owned())]).await;
    let response = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url("/user"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let refused = gateway
        .client
        .request(reqwest::Method::OPTIONS, gateway.url("/user"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
