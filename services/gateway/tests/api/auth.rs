//! Writes need a valid bearer token; reads, probes and metrics do not.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::helpers::{AUDIENCE, SECRET, echo, spawn_gateway, token};

fn signed(subject: &str, audience: &str, expires_in: i64, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = contract::tokens::Claims {
        sub: subject.into(),
        aud: audience.into(),
        iss: None,
        iat: now as u64,
        nbf: None,
        exp: (now + expires_in) as u64,
        roles: Vec::new(),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_authentication_matrix() {
    let user = echo().await;
    let gateway = spawn_gateway(&[("USER_URL", user.url.clone())]).await;
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        ("not a bearer token", Some("Basic YWxpY2U6cHc=".into()), 401),
        ("malformed token", Some("Bearer abc.def".into()), 401),
        (
            "expired token",
            Some(format!(
                "Bearer {}",
                signed("alice", AUDIENCE, -3600, SECRET)
            )),
            401,
        ),
        (
            "wrong key",
            Some(format!(
                "Bearer {}",
                signed("alice", AUDIENCE, 300, "not-the-secret")
            )),
            401,
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                signed("alice", "another-api", 300, SECRET)
            )),
            401,
        ),
        (
            "valid for longer than JWT_MAX_TTL_SECONDS",
            Some(format!(
                "Bearer {}",
                signed("alice", AUDIENCE, 2 * 86_400, SECRET)
            )),
            401,
        ),
        (
            "valid token",
            Some(format!("Bearer {}", token("alice"))),
            201,
        ),
    ];
    let mut problems = Vec::new();
    for (case, authorization, status) in cases {
        let mut request = gateway
            .anonymous
            .post(gateway.url("/user"))
            .json(&json!({"name": "foo", "email": "foo@example.com"}));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{case}");
        if status == 401 {
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm=\"microservice-stack\""),
                "{case}"
            );
            problems.push(json!({
                "case": case,
                "www-authenticate": challenge,
                "body": response.json::<serde_json::Value>().await.unwrap(),
            }));
        }
    }
    insta::assert_json_snapshot!(problems);
}

#[tokio::test]
async fn reads_of_user_data_need_a_token_and_probes_metrics_and_docs_stay_open() {
    let user = echo().await;
    let gateway = spawn_gateway(&[
        ("USER_URL", user.url.clone()),
        ("SLACK_URL", user.url.clone()),
    ])
    .await;
    for path in [
        "/user/1",
        "/users",
        "/users/availability?email=a%40example.com",
        "/messages?channel=%23user",
    ] {
        let response = gateway
            .anonymous
            .get(gateway.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path} without a token");
        let response = gateway.client.get(gateway.url(path)).send().await.unwrap();
        assert_ne!(response.status(), 401, "{path} with one");
    }
    for path in ["/ping", "/metrics", "/openapi.json", "/docs/", "/"] {
        let response = gateway
            .anonymous
            .get(gateway.url(path))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    // `/health` answers anyone, whatever the processes behind it say.
    let health = gateway
        .anonymous
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap();
    assert_ne!(health.status(), 401);
}

#[test]
fn mint_token_prints_a_token_the_gateway_accepts() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mint-token"))
        .args(["carol", "120"])
        .env("JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let authenticator = gateway::auth::Authenticator::new(
        &gateway::configuration::TokenKey::Secret(SECRET.into()),
        AUDIENCE,
        None,
        std::time::Duration::from_secs(86_400),
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    assert_eq!(
        authenticator.verify(&headers).map(|caller| caller.subject),
        Ok(gateway::auth::Subject("carol".into()))
    );
}

#[tokio::test]
async fn rs256_tokens_are_checked_with_the_public_key() {
    let user = echo().await;
    let gateway = spawn_gateway(&[
        ("USER_URL", user.url.clone()),
        (
            "JWT_PUBLIC_KEY",
            include_str!("../fixtures/rs256-test-public.pem").to_owned(),
        ),
    ])
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = contract::tokens::Claims {
        sub: "rsa-user".into(),
        aud: AUDIENCE.into(),
        iss: None,
        iat: now,
        nbf: None,
        exp: now + 300,
        roles: Vec::new(),
    };
    let rs256 = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rs256-test-private.pem")).unwrap(),
    )
    .unwrap();
    for (case, token, status) in [
        ("RS256 signed with the private key", rs256, 201),
        ("HS256 with the old shared secret", token("alice"), 401),
    ] {
        let response = gateway
            .client
            .post(gateway.url("/user"))
            .bearer_auth(token)
            .json(&json!({"name": "foo", "email": "foo@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{case}");
    }
}
