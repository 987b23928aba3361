//! Starting a service, the one way every runner does it: a binary's `main`, the one-process
//! launcher and the tests all prepare a service here (its telemetry, its port bound) and run it
//! on its own telemetry runtime until it is asked to stop, so a service behaves the same
//! however it is run.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use settings::{Lookup, SettingsError};
use telemetry::{Metrics, Telemetry, TelemetryConfig, TelemetryError};
use tokio::net::TcpListener;

use crate::probes::Stopping;

/// How a process runs, whichever service it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `SHUTDOWN_DELAY_MS` (default 0): how long a process asked to stop reports not ready
    /// while still serving, before it drains, so that the balancers in front of it stop
    /// sending it requests first. On Kubernetes the pod's `preStop` does this instead.
    pub shutdown_delay: Duration,
    /// `TOKIO_WORKER_THREADS` (default: tokio's, one per core, a cgroup's CPU quota counted):
    /// the worker threads of each service's runtime. Read here, as a setting like any other,
    /// so that a bad value is a start-up error naming it, where tokio would panic.
    pub worker_threads: Option<NonZeroUsize>,
}

/// Tokio's own variable for its worker threads, kept as the name of the setting.
const WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";

impl ProcessSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&settings::Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        Ok(Self {
            shutdown_delay: lookup.millis("SHUTDOWN_DELAY_MS", 0)?,
            worker_threads: lookup
                .text(WORKER_THREADS)?
                .map(|value| {
                    value.parse().map_err(|_| {
                        SettingsError::new(
                            WORKER_THREADS,
                            value,
                            "expected a whole number of threads, 1 or more",
                        )
                    })
                })
                .transpose()?,
        })
    }
}

/// Completes when the service is asked to stop and the shutdown delay has passed; its
/// [`Stopping`] turns as soon as the stop is asked, for the readiness probe.
pub struct Shutdown {
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    stopping: Stopping,
}

impl Shutdown {
    /// A stop on `signal`, after `delay` of reporting not ready.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static, delay: Duration) -> Self {
        let stopping = Stopping::default();
        let raised = stopping.clone();
        let signal = Box::pin(async move {
            signal.await;
            raised.raise();
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "asked to stop: not ready, draining after the delay"
                );
                tokio::time::sleep(delay).await;
            }
        });
        Self { signal, stopping }
    }

    /// What the readiness probe reads.
    pub fn stopping(&self) -> Stopping {
        self.stopping.clone()
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.signal.as_mut().poll(cx)
    }
}

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
    shutdown_delay: Duration,
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
            shutdown_delay: Duration::ZERO,
            start,
        })
    }

    /// Applies what [`ProcessSettings`] say of how it runs and stops.
    pub fn with(mut self, process: &ProcessSettings) -> Self {
        self.shutdown_delay = process.shutdown_delay;
        if let Some(workers) = process.worker_threads {
            self.telemetry = self.telemetry.with_worker_threads(workers);
        }
        self
    }

    /// The service's own name (not `OTEL_SERVICE_NAME`'s).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Where it listens: the bound address, with the port a port 0 was given.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs the service on a runtime of its own until `signal` completes (then it reports not
    /// ready for the shutdown delay) and it has drained, then flushes its last spans. Blocks the
    /// calling thread.
    pub fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), LaunchError> {
        let running = (self.start)(Shutdown::new(signal, self.shutdown_delay));
        self.telemetry.run(running)?
    }

    /// Runs the service as [`Launch::run`] does, but on the current runtime, which other
    /// services may share: each keeps its own telemetry pipeline, health and shutdown.
    pub async fn serve(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), LaunchError> {
        let running = (self.start)(Shutdown::new(signal, self.shutdown_delay));
        self.telemetry.serve(running).await?
    }

    /// The worker threads [`ProcessSettings`] asked for, if any.
    pub fn worker_threads(&self) -> Option<NonZeroUsize> {
        self.telemetry.worker_threads()
    }
}

/// The `main` of a service binary: reads the telemetry configuration and the process settings,
/// runs the service until SIGTERM or Ctrl-C, and exits non-zero with the reason on any failure.
pub fn main<S: Service>(settings: Result<S, SettingsError>) -> ExitCode {
    let outcome = settings
        .map_err(LaunchError::from)
        .and_then(|service| {
            let process = ProcessSettings::from_env()?;
            Ok((service, TelemetryConfig::from_env()?, process))
        })
        .and_then(|(service, config, process)| {
            Launch::new(service, &config).map(|launch| launch.with(&process))
        })
        .and_then(|launch| launch.run(crate::serve::shutdown_signal()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: {error}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_reports_not_ready_at_once_and_completes_after_the_delay() {
        let (ask, asked) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Shutdown::new(
            async move {
                let _ = asked.await;
            },
            Duration::from_secs(5),
        );
        let stopping = shutdown.stopping();
        let shutdown = tokio::spawn(shutdown);
        tokio::task::yield_now().await;
        assert!(!stopping.is_raised() && !shutdown.is_finished());

        ask.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(stopping.is_raised(), "not ready as soon as asked");
        assert!(!shutdown.is_finished(), "still serving during the delay");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(shutdown.is_finished());
    }

    #[test]
    fn worker_threads_are_a_positive_number_or_tokios_default() {
        let given = |value: &'static str| {
            move |name: &str| (name == "TOKIO_WORKER_THREADS").then(|| value.to_owned())
        };
        assert_eq!(
            ProcessSettings::from_lookup(&given("1"))
                .unwrap()
                .worker_threads,
            NonZeroUsize::new(1)
        );
        for bad in ["0", "-1", "two"] {
            let error = ProcessSettings::from_lookup(&given(bad)).unwrap_err();
            assert_eq!(error.variable, "TOKIO_WORKER_THREADS", "{bad}");
        }
        let unset = |_: &str| None;
        assert_eq!(
            ProcessSettings::from_lookup(&unset).unwrap().worker_threads,
            None
        );
    }

    #[test]
    fn the_delay_is_read_in_milliseconds() {
        let set = |name: &str| (name == "SHUTDOWN_DELAY_MS").then(|| "1500".to_owned());
        assert_eq!(
            ProcessSettings::from_lookup(&set).unwrap().shutdown_delay,
            Duration::from_millis(1500)
        );
        let unset = |_: &str| None;
        assert_eq!(
            ProcessSettings::from_lookup(&unset).unwrap().shutdown_delay,
            Duration::ZERO
        );
    }
}
