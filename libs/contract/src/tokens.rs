//! The bearer tokens the gateway accepts: a JWT whose `aud` names the stack, whose `exp` is in
//! the future (and `nbf`, if any, past), whose `sub` names the caller, and whose `iss` names
//! the issuer when the gateway is told one. Minting lives here, not in the
//! gateway, so tests and tools can make tokens without the gateway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Signs development tokens when `JWT_SECRET` is unset, in development mode only: it is public,
/// and the gateway refuses it outside development mode.
pub const DEVELOPMENT_SECRET: &str = "microservice-stack-development-secret";
/// The audience tokens name unless `JWT_AUDIENCE` says otherwise.
pub const DEFAULT_AUDIENCE: &str = "microservice-stack";
/// The role a token needs for the gateway's `/admin` routes.
pub const ADMIN_ROLE: &str = "admin";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub iat: u64,
    /// Not valid before this second, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub exp: u64,
    /// What the caller may do beyond writing: [`ADMIN_ROLE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Claims {
    /// Claims for `subject`, issued now and valid for `ttl`.
    pub fn new(subject: &str, audience: &str, ttl: Duration) -> Self {
        let issued = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self {
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            iss: None,
            iat: issued,
            nbf: None,
            exp: issued + ttl.as_secs(),
            roles: Vec::new(),
        }
    }

    /// The same, issued by `issuer`.
    pub fn issued_by(mut self, issuer: Option<&str>) -> Self {
        self.iss = issuer.map(str::to_owned);
        self
    }

    /// How long the token is valid for, from its issue.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.exp.saturating_sub(self.iat))
    }

    /// The same, with `roles`.
    pub fn with_roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|&role| role.to_owned()).collect();
        self
    }
}

/// A token signed with HS256 and `secret`.
pub fn sign(claims: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

/// A token for `subject`, HS256 with `secret`, valid for `ttl`.
pub fn mint(secret: &str, subject: &str, audience: &str, ttl: Duration) -> String {
    sign(&Claims::new(subject, audience, ttl), secret)
}
