//! The gateway assembled: the router (the routes, `/health`, the docs, and the layers around
//! them: authentication on writes, rate limits, CORS, telemetry), and running it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{get, post};
use messaging::SharedPublisher;
use messaging::rpc::RpcClient;
use messaging::topology::USER_QUEUE;
use service_kit::faults::Faults;
use service_kit::probes::Stopping;
use service_kit::{Service, Shutdown};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::admin;
use crate::auth::{self, Authenticator};
use crate::configuration::Settings;
use crate::docs::ApiDoc;
use crate::feed::{self, Feed};
use crate::health;
use crate::page::{self, Page, UiConfig};
use crate::proxy::Proxy;
use crate::rate_limit::{self, RateLimit};
use crate::routes;
use crate::state::AppState;

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

/// The handlers' state: the services behind the gateway, the command publisher (which
/// declares user-queue's queue, so commands wait even before user-queue first starts), the RPC
/// client, the live feed.
fn state(settings: &Settings, feed: Arc<Feed>, faults: Faults) -> AppState {
    AppState {
        faults,
        proxy: Proxy::new(settings.upstream_timeout),
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
                development: settings.development(),
            },
            audience: settings.audience.clone(),
        },
    }
}

pub fn app(
    settings: &Settings,
    metrics: &Metrics,
    feed: Arc<Feed>,
    stopping: Stopping,
    faults: Faults,
) -> (Router, RateLimit) {
    let authenticator = Authenticator::new(&settings.token_key, &settings.audience);
    let limits = RateLimit::new(settings.rate_per_second, settings.rate_burst);
    let api = Router::new()
        .route(
            "/user",
            post(routes::create_user).route_layer(middleware::from_fn_with_state(
                authenticator.clone(),
                auth::require_token,
            )),
        )
        .route("/user/{id}", get(routes::get_user))
        .route("/users", get(routes::list_users))
        .route("/users/availability", get(routes::email_availability))
        .route("/messages", get(routes::list_messages))
        .route("/health", get(health::health))
        .route(feed::ROUTE, get(feed::events))
        .route("/", get(page::index))
        .route("/assets/app.js", get(page::script))
        .route("/assets/style.css", get(page::style))
        .route("/ui/config", get(page::config))
        .route("/dev/token", post(page::development_token))
        .merge(service_kit::probes::ping())
        .route_layer(middleware::from_fn_with_state(
            faults.clone(),
            service_kit::faults::strike_routes,
        ));
    // Faults strike neither the admin routes (a fault on every route must not lock its own
    // switch) nor, with FAULTS_ENABLED=false, exist at all.
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
            limits.clone(),
            rate_limit::limit,
        ))
        .with_state(state(settings, Arc::clone(&feed), faults));
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
    let router = telemetry::instrument(service_kit::conventions(api))
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
        if self.development() {
            tracing::warn!(
                "JWT_SECRET is not set: tokens are checked with the public development secret"
            );
        }
        let (stop_feed, feed_stopping) = watch::channel(false);
        let feed = Arc::new(Feed::new(
            self.ws_max_connections,
            self.ws_ping_interval,
            feed_stopping.clone(),
        ));
        let consuming = telemetry::spawn(feed::consume(
            self.amqp_url.clone(),
            Arc::clone(&feed),
            service_kit::serve::stopped(feed_stopping),
        ));
        let faults = Faults::start(&self.faults, Self::NAME);
        let (app, limits) = app(&self, &metrics, feed, shutdown.stopping(), faults);
        let forgetting = telemetry::spawn(limits.forget_idle_clients());
        tracing::info!(address = %listener.local_addr()?, "gateway listening");
        // The feed's clients are told to go when the gateway is asked to stop: their
        // connections are upgraded, so the server's graceful stop does not wait for them.
        let served = service_kit::serve::serve(listener, app, async move {
            shutdown.await;
            let _ = stop_feed.send(true);
        })
        .await;
        let _ = consuming.await;
        forgetting.abort();
        served
    }
}
