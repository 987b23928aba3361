//! Bearer-token authentication for every request about users or messages, reads included: a
//! JWT signed with HS256 (a shared secret) or RS256 (a public key), whose `aud` names this
//! stack, whose `exp` is in the future and `nbf` (if any) past, whose `iss` is `JWT_ISSUER`
//! when that is set, and that is valid for no longer than `JWT_MAX_TTL_SECONDS`. Its subject
//! goes to the services in `x-enduser-id` and on spans as `enduser.id`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contract::tokens::Claims;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use service_kit::Problem;

use crate::configuration::TokenKey;

/// The authenticated caller, for the handlers after the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(pub String);

/// What a valid token says of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: Subject,
    pub roles: Vec<String>,
}

/// Why a request is not authenticated; each answers 401 with `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs a bearer token")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this API")]
    WrongAudience,
    #[error("the token is not from the expected issuer")]
    WrongIssuer,
    #[error("the token is valid for longer than this API allows")]
    TooLong,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token is not valid")]
    Invalid,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        // RFC 6750: no error code when no token was sent at all.
        let challenge = match &self {
            AuthError::Missing => r#"Bearer realm="microservice-stack""#.to_owned(),
            other => format!(
                r#"Bearer realm="microservice-stack", error="invalid_token", error_description="{other}""#
            ),
        };
        let mut response = Problem::unauthorized(self.to_string()).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    max_lifetime: Duration,
}

impl Authenticator {
    pub fn new(
        key: &TokenKey,
        audience: &str,
        issuer: Option<&str>,
        max_lifetime: Duration,
    ) -> Self {
        let (key, algorithm) = match key {
            TokenKey::Secret(secret) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            TokenKey::RsaPublicKey(pem) => (
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .expect("checked when the settings were read"),
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.validate_nbf = true;
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            validation.set_required_spec_claims(&["exp", "aud", "sub", "iss"]);
        }
        validation.leeway = 5;
        Self {
            key,
            validation,
            max_lifetime,
        }
    }

    /// The caller of the request's bearer token.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                self.verify_token(token.trim())
            }
            _ => Err(AuthError::NotBearer),
        }
    }

    /// The caller of `token` itself (sent another way than the Authorization header).
    pub fn verify_token(&self, token: &str) -> Result<Caller, AuthError> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) if data.claims.lifetime() > self.max_lifetime => Err(AuthError::TooLong),
            Ok(data) => Ok(Caller {
                subject: Subject(data.claims.sub),
                roles: data.claims.roles,
            }),
            Err(error) => Err(match error.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    AuthError::BadSignature
                }
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => AuthError::Malformed,
                _ => AuthError::Invalid,
            }),
        }
    }
}

/// Middleware for the routes that change data.
pub async fn require_token(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, AuthError> {
    let caller = authenticator.verify(request.headers())?;
    telemetry::http_server::record_enduser(&caller.subject.0);
    request.extensions_mut().insert(caller.subject);
    Ok(next.run(request).await)
}

/// Middleware for the `/admin` routes: a valid token with the admin role (401 without a valid
/// token, 403 without the role).
pub async fn require_admin(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match authenticator.verify(request.headers()) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    telemetry::http_server::record_enduser(&caller.subject.0);
    if !caller
        .roles
        .iter()
        .any(|role| role == contract::tokens::ADMIN_ROLE)
    {
        return Problem::forbidden(format!(
            "this needs a token with the {} role",
            contract::tokens::ADMIN_ROLE
        ))
        .into_response();
    }
    request.extensions_mut().insert(caller.subject);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use contract::tokens::{mint, sign};

    use super::*;

    const SECRET: &str = "test-secret";

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn signed(claims: &Claims, secret: &str) -> String {
        sign(claims, secret)
    }

    #[test]
    fn the_authentication_matrix() {
        let auth = Authenticator::new(
            &TokenKey::Secret(SECRET.into()),
            "stack",
            None,
            Duration::from_secs(3600),
        );
        let valid = Claims::new("alice", "stack", Duration::from_secs(60));
        let expired = Claims {
            exp: valid.iat - 3600,
            ..valid.clone()
        };
        let elsewhere = Claims {
            aud: "another-api".into(),
            ..valid.clone()
        };

        assert_eq!(auth.verify(&HeaderMap::new()), Err(AuthError::Missing));
        assert_eq!(
            auth.verify(&headers("Basic YWxpY2U6cHc=")),
            Err(AuthError::NotBearer)
        );
        assert_eq!(auth.verify(&headers("Bearer ")), Err(AuthError::NotBearer));
        assert_eq!(
            auth.verify(&headers("Bearer not.a.jwt")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.verify(&headers(&format!("Bearer {}", signed(&expired, SECRET)))),
            Err(AuthError::Expired)
        );
        assert_eq!(
            auth.verify(&headers(&format!("Bearer {}", signed(&valid, "other")))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            auth.verify(&headers(&format!("Bearer {}", signed(&elsewhere, SECRET)))),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            auth.verify(&headers(&format!(
                "bearer {}",
                mint(SECRET, "alice", "stack", Duration::from_secs(60))
            ))),
            Ok(Caller {
                subject: Subject("alice".into()),
                roles: Vec::new()
            })
        );
        let admin = Claims::new("root", "stack", Duration::from_secs(60)).with_roles(&["admin"]);
        assert_eq!(
            auth.verify(&headers(&format!("Bearer {}", signed(&admin, SECRET))))
                .unwrap()
                .roles,
            ["admin"]
        );
    }

    #[test]
    fn issuer_not_before_and_lifetime_are_checked() {
        let auth = Authenticator::new(
            &TokenKey::Secret(SECRET.into()),
            "stack",
            Some("https://issuer.example"),
            Duration::from_secs(3600),
        );
        let bearer = |claims: &Claims| headers(&format!("Bearer {}", signed(claims, SECRET)));
        let valid = Claims::new("alice", "stack", Duration::from_secs(60))
            .issued_by(Some("https://issuer.example"));
        assert!(auth.verify(&bearer(&valid)).is_ok());
        let elsewhere = valid.clone().issued_by(Some("https://other.example"));
        assert_eq!(
            auth.verify(&bearer(&elsewhere)),
            Err(AuthError::WrongIssuer)
        );
        let none = valid.clone().issued_by(None);
        assert_eq!(auth.verify(&bearer(&none)), Err(AuthError::Invalid));
        let later = Claims {
            nbf: Some(valid.iat + 600),
            ..valid.clone()
        };
        assert_eq!(auth.verify(&bearer(&later)), Err(AuthError::NotYetValid));
        let forever = Claims::new("alice", "stack", Duration::from_secs(7200))
            .issued_by(Some("https://issuer.example"));
        assert_eq!(auth.verify(&bearer(&forever)), Err(AuthError::TooLong));
    }

    #[test]
    fn a_401_carries_the_bearer_challenge() {
        let response = AuthError::Expired.into_response();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"microservice-stack\", error=\"invalid_token\"")
        );
        let response = AuthError::Missing.into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"microservice-stack\""
        );
    }
}
