//! The gateway assembled: the router (the routes, `/health`, the docs, and the layers around
//! them: authentication on writes, rate limits, CORS, telemetry), and running it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{get, post};
use contract::faults::FaultKind;
use messaging::SharedPublisher;
use messaging::rpc::RpcClient;
use messaging::topology::USER_QUEUE;
use service_kit::faults::Faults;
use service_kit::probes::Stopping;
use service_kit::{Service, Shutdown};
use settings::Secret;
use telemetry::Metrics;
use telemetry::frontend::FrontendRelay;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::admin;
use crate::auth::{self, Authenticator};
use crate::configuration::Settings;
use crate::docs::ApiDoc;
use crate::feed::{self, Feed, FeedAccess};
use crate::health;
use crate::origin::AllowedOrigins;
use crate::page::{self, FrontendTracing, Page, UiConfig};
use crate::proxy::Proxy;
use crate::rate_limit::{self, RateLimit};
use crate::routes;
use crate::state::AppState;

/// The page whose spans the gateway relays.
const PAGE: telemetry::frontend::Page = telemetry::frontend::Page {
    service_name: contract::frontend::SERVICE_NAME,
    actions: &contract::frontend::ACTIONS,
};

/// Cross-origin calls from the origins `CORS_ALLOWED_ORIGINS` names, and none else by default
/// (the page, served from the gateway's own origin, needs none).
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers([
            header::LOCATION,
            header::LINK,
            header::RETRY_AFTER,
            header::HeaderName::from_static(telemetry::TRACE_ID_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}

fn authenticator(settings: &Settings) -> Authenticator {
    Authenticator::new(
        &settings.token_key,
        &settings.audience,
        settings.issuer.as_deref(),
        settings.max_token_lifetime,
    )
}

/// The live feed of `settings`, with who may connect to it.
pub fn live_feed(settings: &Settings, stopping: watch::Receiver<bool>) -> Feed {
    Feed::new(
        FeedAccess {
            authenticator: authenticator(settings),
            origins: AllowedOrigins::new(&settings.cors_origins),
            max_connections: settings.ws_max_connections,
            max_per_client: settings.ws_max_connections_per_client,
        },
        settings.ws_ping_interval,
        stopping,
    )
}

/// The handlers' state: the services behind the gateway, the command publisher (which
/// declares user-queue's queue, so commands wait even before user-queue first starts), the RPC
/// client, the live feed.
fn state(
    settings: &Settings,
    feed: Arc<Feed>,
    faults: Faults,
    frontend: Arc<FrontendRelay>,
) -> AppState {
    let fault_kinds = if faults.enabled() {
        FaultKind::ALL.into_iter().map(FaultKind::info).collect()
    } else {
        Vec::new()
    };
    AppState {
        faults,
        proxy: Proxy::new(settings.upstream_timeout, settings.internal_token.clone()),
        user: settings.user.clone(),
        slack: settings.slack.clone(),
        health_targets: Arc::new(vec![
            settings.user.clone(),
            settings.slack.clone(),
            settings.user_queue.clone(),
            settings.slack_queue.clone(),
        ]),
        health_timeout: settings.health_timeout,
        commands: Arc::new(SharedPublisher::new(
            settings.amqp_url.clone(),
            Arc::new(|channel| Box::pin(async move { USER_QUEUE.declare(&channel).await })),
        )),
        rpc: Arc::new(RpcClient::new(
            settings.amqp_url.clone(),
            contract::broker::USER_RPC_QUEUE,
            settings.rpc_timeout,
        )),
        feed,
        page: Page {
            ui: UiConfig {
                zipkin_url: settings.zipkin_ui_url.clone(),
                grafana_url: settings.grafana_url.clone(),
                prometheus_url: settings.prometheus_url.clone(),
                docs_url: "/docs".to_owned(),
                development: settings.development,
                fault_kinds,
                frontend: FrontendTracing {
                    service_name: contract::frontend::SERVICE_NAME,
                    traces_endpoint: crate::frontend::ROUTE,
                },
            },
            audience: settings.audience.clone(),
            development_secret: settings.development_secret().map(Secret::new),
        },
        proxies: settings.trusted_proxies.clone(),
        frontend,
    }
}

/// The rate limits the router applies, each a bucket per client that must be forgotten when
/// idle.
pub struct Limits {
    pub every_route: RateLimit,
    pub availability: RateLimit,
    pub frontend: RateLimit,
}

impl Limits {
    fn all(&self) -> [&RateLimit; 3] {
        [&self.every_route, &self.availability, &self.frontend]
    }
}

pub fn app(
    settings: &Settings,
    metrics: &Metrics,
    feed: Arc<Feed>,
    stopping: Stopping,
    faults: Faults,
    frontend: Arc<FrontendRelay>,
) -> (Router, Limits) {
    let authenticator = authenticator(settings);
    let limits = Limits {
        every_route: RateLimit::new(
            settings.rate_per_second,
            settings.rate_burst,
            settings.trusted_proxies.clone(),
        ),
        availability: RateLimit::new(
            settings.availability_rate_per_second,
            settings.availability_rate_burst,
            settings.trusted_proxies.clone(),
        ),
        frontend: RateLimit::new(
            crate::frontend::RATE_PER_SECOND,
            crate::frontend::RATE_BURST,
            settings.trusted_proxies.clone(),
        ),
    };
    let token = || middleware::from_fn_with_state(authenticator.clone(), auth::require_token);
    let api = Router::new()
        .route("/user", post(routes::create_user).route_layer(token()))
        .route("/user/{id}", get(routes::get_user).route_layer(token()))
        .route("/users", get(routes::list_users).route_layer(token()))
        .route(
            "/users/availability",
            // Whether an email is registered is worth a guess per request: fewer of them.
            get(routes::email_availability)
                .route_layer(token())
                .route_layer(middleware::from_fn_with_state(
                    limits.availability.clone(),
                    rate_limit::limit,
                )),
        )
        .route("/messages", get(routes::list_messages).route_layer(token()))
        .route("/health", get(health::health))
        .route(feed::ROUTE, get(feed::events))
        .route("/", get(page::index))
        .route("/assets/{*path}", get(page::asset))
        .route("/ui/config", get(page::config))
        .route(
            crate::frontend::ROUTE,
            post(crate::frontend::relay).route_layer(middleware::from_fn_with_state(
                limits.frontend.clone(),
                rate_limit::limit,
            )),
        )
        .merge(service_kit::probes::ping());
    // Development tokens exist in development mode only.
    let api = if settings.development_secret().is_some() {
        api.route("/dev/token", post(page::development_token))
    } else {
        api
    };
    let api = api.route_layer(middleware::from_fn_with_state(
        faults.clone(),
        service_kit::faults::strike_routes,
    ));
    // Faults strike neither the admin routes (a fault on every route must not lock its own
    // switch) nor, while they are not enabled, exist at all.
    let api = if faults.enabled() {
        api.route(
            "/admin/faults",
            get(admin::list_faults)
                .put(admin::replace_faults)
                .delete(admin::clear_faults)
                .route_layer(middleware::from_fn_with_state(
                    authenticator,
                    auth::require_admin,
                )),
        )
    } else {
        api
    };
    let api = api
        .route_layer(middleware::from_fn_with_state(
            limits.every_route.clone(),
            rate_limit::limit,
        ))
        .with_state(state(settings, Arc::clone(&feed), faults, frontend));
    // Liveness and readiness of the gateway itself: ready while it reaches the broker, which
    // its creations, RPC calls and live feed all need; `/health` is the whole stack's.
    let probes = service_kit::probes::health(stopping, move || {
        let feed = Arc::clone(&feed);
        async move { feed.ready() }
    })
    .merge(metrics.router())
    .merge(service_kit::openapi_route(
        <ApiDoc as utoipa::OpenApi>::openapi(),
    ))
    .merge(SwaggerUi::new("/docs").config(Config::from("/openapi.json")));
    let edge = telemetry::http_server::Edge {
        trust_inbound_context: settings.trust_inbound_context,
    };
    let router = telemetry::http_server::instrument_edge(service_kit::conventions(api), edge)
        .merge(probes)
        .layer(cors(&settings.cors_origins));
    (router, limits)
}

impl Service for Settings {
    const NAME: &'static str = crate::SERVICE_NAME;
    const VERSION: &'static str = crate::VERSION;
    type Error = std::io::Error;

    fn listen(&self) -> std::net::SocketAddr {
        self.listen
    }

    async fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> std::io::Result<()> {
        if self.development {
            tracing::warn!(
                "development mode (DEV_MODE, or listening on loopback): /dev/token is served, \
                 and faults may be switched on; never expose it to a network"
            );
        }
        let (stop_feed, feed_stopping) = watch::channel(false);
        let feed = Arc::new(live_feed(&self, feed_stopping.clone()));
        let consuming = telemetry::spawn(feed::consume(
            self.amqp_url.clone(),
            Arc::clone(&feed),
            service_kit::serve::stopped(feed_stopping),
        ));
        let faults = Faults::start(&self.faults, Self::NAME);
        let frontend =
            Arc::new(FrontendRelay::new(&self.telemetry, PAGE).map_err(std::io::Error::other)?);
        let (app, limits) = app(&self, &metrics, feed, shutdown.stopping(), faults, frontend);
        let forgetting = limits
            .all()
            .map(|limit| telemetry::spawn(limit.clone().forget_idle_clients()));
        tracing::info!(address = %listener.local_addr()?, "gateway listening");
        // The feed's clients are told to go when the gateway is asked to stop: their
        // connections are upgraded, so the server's graceful stop does not wait for them.
        let served = service_kit::serve::serve(listener, app, async move {
            shutdown.await;
            let _ = stop_feed.send(true);
        })
        .await;
        let _ = consuming.await;
        for forgetting in forgetting {
            forgetting.abort();
        }
        served
    }
}
