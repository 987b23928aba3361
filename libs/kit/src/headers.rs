//! The request headers that carry meaning between the processes (`contract::headers`): who the
//! gateway authenticated, and a client's `Idempotency-Key`.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use contract::users::IdempotencyKey;
use settings::Secret;
use uuid::Uuid;

use crate::problem::Problem;

/// The subject the gateway authenticated, as it tells the services behind it.
pub fn enduser(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(contract::headers::ENDUSER)
        .and_then(|value| value.to_str().ok())
}

/// When a service believes the `x-enduser-id` of a request: when it carries the secret the
/// gateway shares (`INTERNAL_TOKEN`), or, with no secret set, in development mode only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTrust {
    token: Option<Secret>,
    development: bool,
}

impl GatewayTrust {
    /// `INTERNAL_TOKEN`, and whether the process runs in development mode.
    pub fn from_lookup(
        lookup: &impl settings::Lookup,
        development: bool,
    ) -> Result<Self, settings::SettingsError> {
        Ok(Self {
            token: lookup.text("INTERNAL_TOKEN")?.map(Secret::new),
            development,
        })
    }

    /// Trusts every request: for tests of a service alone.
    pub fn everyone() -> Self {
        Self {
            token: None,
            development: true,
        }
    }

    fn trusts(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            None => self.development,
            Some(token) => headers
                .get(contract::headers::INTERNAL_TOKEN)
                .is_some_and(|sent| constant_time_eq(sent.as_bytes(), token.expose().as_bytes())),
        }
    }
}

/// Whether `a` and `b` are equal, in a time that does not tell how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// Middleware for a service behind the gateway: a request the gateway sent keeps its
/// `x-enduser-id`, which goes on the request's SERVER span as `enduser.id`; anyone else's is
/// removed before a handler can read it. Add it inside `telemetry::instrument`.
pub async fn record_enduser(
    State(trust): State<GatewayTrust>,
    mut request: Request,
    next: Next,
) -> Response {
    if trust.trusts(request.headers()) {
        if let Some(subject) = enduser(request.headers()) {
            telemetry::http_server::record_enduser(subject);
        }
    } else {
        request.headers_mut().remove(contract::headers::ENDUSER);
    }
    request
        .headers_mut()
        .remove(contract::headers::INTERNAL_TOKEN);
    next.run(request).await
}

/// The event id that the request's `Idempotency-Key` names for the client `subject`: `None`
/// without a key, a 400 for a malformed one.
pub fn creation_event_id(headers: &HeaderMap, subject: &str) -> Result<Option<Uuid>, Problem> {
    match headers.get(contract::headers::IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => IdempotencyKey::parse(value.as_bytes())
            .map(|key| Some(key.event_id(subject)))
            .map_err(Problem::malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_enduser_is_believed_from_the_gateway_only() {
        let shared = GatewayTrust {
            token: Some(Secret::new("s3cret-shared-with-the-gateway")),
            development: true,
        };
        assert!(shared.trusts(&headers(&[(
            "x-internal-token",
            "s3cret-shared-with-the-gateway"
        )])));
        assert!(!shared.trusts(&headers(&[("x-internal-token", "s3cret")])));
        assert!(!shared.trusts(&headers(&[])), "a secret set is asked for");
        let unset = |development| GatewayTrust {
            token: None,
            development,
        };
        assert!(
            unset(true).trusts(&headers(&[])),
            "development mode, no secret"
        );
        assert!(!unset(false).trusts(&headers(&[])));
    }
}
