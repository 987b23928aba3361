//! Starting a service, the one way every runner does it: a binary's `main`, the one-process
//! launcher and the tests all prepare a service here (its telemetry, its port bound) and run it
//! on its own telemetry runtime until it is asked to stop, so a service behaves the same
//! however it is run.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use settings::SettingsError;
use telemetry::{Metrics, Telemetry, TelemetryConfig, TelemetryError};
use tokio::net::TcpListener;

/// Completes when the service is asked to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

type Running = Pin<Box<dyn Future<Output = Result<(), LaunchError>> + Send>>;

/// A service, as its runners see it: implemented by its settings, which hold everything it
/// needs to run.
pub trait Service: Sized + Send + 'static {
    /// Its name in traces, metrics and logs (unless `OTEL_SERVICE_NAME` says otherwise).
    const NAME: &'static str;
    const VERSION: &'static str;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Where it listens.
    fn listen(&self) -> SocketAddr;

    /// Serves on `listener` until `shutdown` completes, then drains and returns.
    fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why a service could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Service(Box<dyn std::error::Error + Send + Sync>),
}

/// A service ready to run: its telemetry built, its port bound.
pub struct Launch {
    name: &'static str,
    address: SocketAddr,
    telemetry: Telemetry,
    start: Box<dyn FnOnce(Shutdown) -> Running + Send>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Launch {
    /// Prepares `service` on the address it names.
    pub fn new<S: Service>(service: S, config: &TelemetryConfig) -> Result<Self, LaunchError> {
        let address = service.listen();
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| LaunchError::Listen { address, source })?;
        Self::on(service, config, listener)
    }

    /// Prepares `service` on a listener bound already (a test's port 0, say).
    pub fn on<S: Service>(
        service: S,
        config: &TelemetryConfig,
        listener: std::net::TcpListener,
    ) -> Result<Self, LaunchError> {
        let listen_error = |source| LaunchError::Listen {
            address: service.listen(),
            source,
        };
        listener.set_nonblocking(true).map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        let telemetry = Telemetry::init(S::NAME, S::VERSION, config)?;
        let metrics = telemetry.metrics().clone();
        let start = Box::new(move |shutdown: Shutdown| -> Running {
            Box::pin(async move {
                let listener = TcpListener::from_std(listener)
                    .map_err(|source| LaunchError::Listen { address, source })?;
                service
                    .run(metrics, listener, shutdown)
                    .await
                    .map_err(|error| LaunchError::Service(Box::new(error)))
            })
        });
        Ok(Self {
            name: S::NAME,
            address,
            telemetry,
            start,
        })
    }

    /// The service's own name (not `OTEL_SERVICE_NAME`'s).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it listens: the bound address, with the port a port 0 was given.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs the service on a runtime of its own until `shutdown` completes and it has drained,
    /// then flushes its last spans. Blocks the calling thread.
    pub fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LaunchError> {
        let running = (self.start)(Box::pin(shutdown));
        self.telemetry.run(running)?
    }
}

/// The `main` of a service binary: reads the telemetry configuration, runs the service until
/// SIGTERM or Ctrl-C, and exits non-zero with the reason on any failure.
pub fn main<S: Service>(settings: Result<S, SettingsError>) -> ExitCode {
    let outcome = settings
        .map_err(LaunchError::from)
        .and_then(|service| Ok((service, TelemetryConfig::from_env()?)))
        .and_then(|(service, config)| Launch::new(service, &config))
        .and_then(|launch| launch.run(crate::serve::shutdown_signal()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: {error}", S::NAME);
            ExitCode::FAILURE
        }
    }
}
