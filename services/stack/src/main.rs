//! Runs every service of the stack in one process, on one runtime, each on its default port
//! with its own telemetry pipeline (so each exports spans under its own name and serves its own
//! `/metrics`), against the local Postgres, Redis and RabbitMQ: the no-Docker way to run it all.
//! `stack user user-queue` runs only the services named (a second replica of them, say, on
//! other ports).
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

/// The services it can run, in the order it starts them.
const SERVICES: [&str; 5] = ["gateway", "user", "slack", "user-queue", "slack-queue"];

/// The services `named` (all when none is), the gateway apart: the front, then the services
/// behind it (stopped after the gateway has drained).
fn launches(
    named: &[String],
    config: &TelemetryConfig,
    process: &ProcessSettings,
) -> Result<(Vec<Launch>, Vec<Launch>), String> {
    if let Some(unknown) = named.iter().find(|name| !SERVICES.contains(&name.as_str())) {
        return Err(format!(
            "no service {unknown:?}; the services are {}",
            SERVICES.join(", ")
        ));
    }
    let wanted = |name: &str| named.is_empty() || named.iter().any(|named| named == name);
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for name in SERVICES.into_iter().filter(|name| wanted(name)) {
        let launch = match name {
            "gateway" => launch(gateway::Settings::from_env(), config, process)?,
            "user" => launch(user::Settings::from_env(), config, process)?,
            "slack" => launch(slack::Settings::from_env(), config, process)?,
            "user-queue" => launch(user::QueueSettings::from_env(), config, process)?,
            _ => launch(slack::QueueSettings::from_env(), config, process)?,
        };
        if name == "gateway" {
            front.push(launch);
        } else {
            back.push(launch);
        }
    }
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
            let named: Vec<String> = std::env::args().skip(1).collect();
            let process = ProcessSettings::from_env().map_err(|error| error.to_string())?;
            Ok((launches(&named, &config, &process)?, config, process))
        });
    let ((front, back), config, process) = match prepared {
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

    telemetry::log_strays("stack", &config);
    let failures = supervisor::run(
        front,
        back,
        process.worker_threads,
        service_kit::serve::shutdown_signal(),
    );
    for (name, error) in &failures {
        eprintln!("stack: {name} stopped: {error}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
