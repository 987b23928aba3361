//! A token bucket per client (see `client`): `RATE_LIMIT_PER_SECOND` requests a second on
//! average, bursts up to `RATE_LIMIT_BURST`; beyond that, 429 with `Retry-After`. Routes that
//! need a stricter bound (`/users/availability`, the page's span relay) get a limiter of their
//! own besides.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use service_kit::Problem;

use crate::client::{ClientKey, TrustedProxies};

#[derive(Clone)]
pub struct RateLimit {
    buckets: Arc<DefaultKeyedRateLimiter<ClientKey>>,
    proxies: TrustedProxies,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32, proxies: TrustedProxies) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            buckets: Arc::new(RateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            )),
            proxies,
        }
    }

    /// Forgets clients whose buckets are full again, so memory follows the active clients.
    pub async fn forget_idle_clients(self) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            self.buckets.retain_recent();
        }
    }
}

pub async fn limit(State(limit): State<RateLimit>, request: Request, next: Next) -> Response {
    let client = limit.proxies.key(request.extensions(), request.headers());
    if let Err(not_until) = limit.buckets.check_key(&client) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response =
            Problem::too_many_requests(format!("too many requests; retry in {seconds} s"))
                .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }
    next.run(request).await
}
