//! The `main` of every service binary: read the settings and the telemetry configuration, bind
//! the port, run the service on its telemetry runtime until SIGTERM, exit non-zero with the
//! reason on any failure.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use telemetry::{Metrics, Telemetry, TelemetryConfig};
use tokio::net::TcpListener;

use crate::settings::SettingsError;

/// Completes when the process is asked to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the service `name` as a process of its own.
pub fn main<S, Fut, E>(
    name: &'static str,
    version: &'static str,
    settings: Result<S, SettingsError>,
    listen: impl FnOnce(&S) -> SocketAddr,
    start: impl FnOnce(S, Metrics, TcpListener, Shutdown) -> Fut + Send + 'static,
) -> ExitCode
where
    S: Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let fail = |error: &dyn Display| {
        eprintln!("{name}: {error}");
        ExitCode::FAILURE
    };
    let (settings, config) = match (settings, TelemetryConfig::from_env()) {
        (Ok(settings), Ok(config)) => (settings, config),
        (Err(error), _) => return fail(&error),
        (_, Err(error)) => return fail(&error),
    };
    let telemetry = match Telemetry::init(name, version, &config) {
        Ok(telemetry) => telemetry,
        Err(error) => return fail(&error),
    };
    let metrics = telemetry.metrics().clone();
    let address = listen(&settings);
    let outcome = telemetry.run(async move {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        start(
            settings,
            metrics,
            listener,
            Box::pin(crate::serve::shutdown_signal()),
        )
        .await
        .map_err(|error| error.to_string())
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => fail(&error),
        Err(error) => fail(&error),
    }
}
