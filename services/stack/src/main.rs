//! Runs every service of the stack in one process, each on its default port with its own
//! runtime and telemetry pipeline (so each exports spans under its own name and serves its own
//! `/metrics`), against the local Postgres, Redis and RabbitMQ: the no-Docker way to run it all.
//!
//! Configuration is the same environment each service reads on its own, except that
//! `OTEL_SERVICE_NAME` is ignored here: every service keeps its own name.

mod supervisor;

use std::process::ExitCode;

use service_kit::launch::ProcessSettings;
use service_kit::{Launch, LaunchError, Service};
use telemetry::TelemetryConfig;

fn launch<S: Service>(
    settings: Result<S, settings::SettingsError>,
    config: &TelemetryConfig,
    process: &ProcessSettings,
) -> Result<Launch, String> {
    settings
        .map_err(LaunchError::from)
        .and_then(|service| Launch::new(service, config))
        .map(|launch| launch.with(process))
        .map_err(|error| format!("{}: {error}", S::NAME))
}

/// The gateway, then the services behind it (stopped after the gateway has drained).
fn launches(config: &TelemetryConfig) -> Result<(Vec<Launch>, Vec<Launch>), String> {
    let process = ProcessSettings::from_env().map_err(|error| error.to_string())?;
    let front = vec![launch(gateway::Settings::from_env(), config, &process)?];
    let back = vec![
        launch(user::Settings::from_env(), config, &process)?,
        launch(slack::Settings::from_env(), config, &process)?,
        launch(user::QueueSettings::from_env(), config, &process)?,
        launch(slack::QueueSettings::from_env(), config, &process)?,
    ];
    Ok((front, back))
}

fn main() -> ExitCode {
    let prepared = TelemetryConfig::from_env()
        .map_err(|error| error.to_string())
        .and_then(|config| {
            // Every service keeps its own name.
            let config = TelemetryConfig {
                service_name: None,
                ..config
            };
            Ok((launches(&config)?, config))
        });
    let ((front, back), config) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("stack: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "microservice-stack: {} service(s) in one process",
        front.len() + back.len()
    );
    for launch in front.iter().chain(&back) {
        println!(
            "  {:<12} http://localhost:{}  (GET /metrics, /health/ready)",
            launch.name(),
            launch.address().port()
        );
    }
    println!("  traces go to {}", config.destination());

    let failures = supervisor::run(front, back, service_kit::serve::shutdown_signal());
    for (name, error) in &failures {
        eprintln!("stack: {name} stopped: {error}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
