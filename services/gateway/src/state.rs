//! What the gateway's handlers share.

use std::sync::Arc;
use std::time::Duration;

use messaging::SharedPublisher;
use messaging::rpc::RpcClient;
use service_kit::faults::Faults;
use telemetry::frontend::FrontendRelay;

use crate::client::TrustedProxies;
use crate::configuration::Upstream;
use crate::feed::Feed;
use crate::page::Page;
use crate::proxy::Proxy;

#[derive(Clone)]
pub struct AppState {
    pub proxy: Proxy,
    pub user: Upstream,
    pub slack: Upstream,
    /// Every process `/health` asks.
    pub health_targets: Arc<Vec<Upstream>>,
    pub health_timeout: Duration,
    /// Publishes the `create_user` commands of asynchronous creations.
    pub commands: Arc<SharedPublisher>,
    /// Calls the user service's procedures over RabbitMQ.
    pub rpc: Arc<RpcClient>,
    /// The live feed's events and clients.
    pub feed: Arc<Feed>,
    /// What the page is told.
    pub page: Page,
    /// The faults switched on at run time.
    pub faults: Faults,
    /// Whose `X-Forwarded-For` names the client.
    pub proxies: TrustedProxies,
    /// Takes the page's spans into the stack's traces.
    pub frontend: Arc<FrontendRelay>,
}

impl axum::extract::FromRef<AppState> for Arc<FrontendRelay> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.frontend)
    }
}

impl axum::extract::FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.proxies.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Feed> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.feed)
    }
}

impl axum::extract::FromRef<AppState> for Faults {
    fn from_ref(state: &AppState) -> Self {
        state.faults.clone()
    }
}

impl axum::extract::FromRef<AppState> for Page {
    fn from_ref(state: &AppState) -> Self {
        state.page.clone()
    }
}
