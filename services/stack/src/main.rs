//! Runs every service of the stack in one process, each on its default port with its own
//! runtime and telemetry pipeline (so each exports spans under its own name and serves its own
//! `/metrics`), against the local Postgres, Redis and RabbitMQ: the no-Docker way to run it all.
//!
//! Configuration is the same environment each service reads on its own, except that
//! `OTEL_SERVICE_NAME` is ignored here: every service keeps its own name.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use service_kit::process::Shutdown;
use service_kit::settings::SettingsError;
use telemetry::{Metrics, Telemetry, TelemetryConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

type ServiceFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One service, ready to run.
struct Launch {
    name: &'static str,
    listen: SocketAddr,
    telemetry: Telemetry,
    service: ServiceFuture,
}

/// Prepares the service `name`: its settings, its telemetry, and the future that runs it.
fn launch<S, Fut, E>(
    name: &'static str,
    version: &'static str,
    settings: Result<S, SettingsError>,
    listen: impl FnOnce(&S) -> SocketAddr,
    start: impl FnOnce(S, Metrics, TcpListener, Shutdown) -> Fut + Send + 'static,
    config: &TelemetryConfig,
    stop: &watch::Receiver<bool>,
) -> Result<Launch, String>
where
    S: Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let settings = settings.map_err(|error| format!("{name}: {error}"))?;
    let telemetry =
        Telemetry::init(name, version, config).map_err(|error| format!("{name}: {error}"))?;
    let metrics = telemetry.metrics().clone();
    let listen = listen(&settings);
    let stopped = service_kit::serve::stopped(stop.clone());
    let service = Box::pin(async move {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
        start(settings, metrics, listener, Box::pin(stopped))
            .await
            .map_err(|error| error.to_string())
    });
    Ok(Launch {
        name,
        listen,
        telemetry,
        service,
    })
}

/// Every service of the stack, in start order. The gateway stops on `stop_front`, the others
/// on `stop_back`, so that on shutdown the gateway drains its requests while the services
/// behind it still answer.
fn launches(
    config: &TelemetryConfig,
    stop_front: &watch::Receiver<bool>,
    stop_back: &watch::Receiver<bool>,
) -> Result<Vec<Launch>, String> {
    Ok(vec![
        launch(
            gateway::SERVICE_NAME,
            gateway::VERSION,
            gateway::Settings::from_env(),
            |settings| settings.listen,
            gateway::run,
            config,
            stop_front,
        )?,
        launch(
            user::SERVICE_NAME,
            user::VERSION,
            user::Settings::from_env(),
            |settings| settings.listen,
            user::run,
            config,
            stop_back,
        )?,
        launch(
            slack::SERVICE_NAME,
            slack::VERSION,
            slack::Settings::from_env(),
            |settings| settings.listen,
            slack::startup::run,
            config,
            stop_back,
        )?,
        launch(
            user::QUEUE_SERVICE_NAME,
            user::VERSION,
            user::queue::QueueSettings::from_env(),
            |settings| settings.listen,
            user::queue::run,
            config,
            stop_back,
        )?,
        launch(
            slack::QUEUE_SERVICE_NAME,
            slack::VERSION,
            slack::QueueSettings::from_env(),
            |settings| settings.listen,
            slack::queue::run,
            config,
            stop_back,
        )?,
    ])
}

fn main() -> ExitCode {
    let config = match TelemetryConfig::from_env() {
        Ok(config) => TelemetryConfig {
            service_name: None,
            ..config
        },
        Err(error) => {
            eprintln!("stack: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_front, stop_front_receiver) = watch::channel(false);
    let (stop_back, stop_back_receiver) = watch::channel(false);
    let launches = match launches(&config, &stop_front_receiver, &stop_back_receiver) {
        Ok(launches) => launches,
        Err(error) => {
            eprintln!("stack: {error}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "microservice-stack: {} service(s) in one process",
        launches.len()
    );
    for launch in &launches {
        println!(
            "  {:<12} http://localhost:{}  (GET /metrics, /health/ready)",
            launch.name,
            launch.listen.port()
        );
    }
    println!("  traces go to {}", config.destination());

    let (finished, mut finished_receiver) = mpsc::unbounded_channel();
    let threads: Vec<_> = launches
        .into_iter()
        .map(|launch| {
            let finished = finished.clone();
            std::thread::Builder::new()
                .name(launch.name.to_owned())
                .spawn(move || {
                    let outcome = launch
                        .telemetry
                        .run(launch.service)
                        .map_err(|error| error.to_string())
                        .and_then(|outcome| outcome);
                    let _ = finished.send((launch.name, outcome));
                })
                .expect("a thread per service")
        })
        .collect();
    drop(finished);

    // A stop signal stops the gateway, then, once it has drained, the rest. A service that
    // ends on its own stops them all at once.
    let failed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the launcher")
        .block_on(async move {
            let mut failed = false;
            let mut report = |(name, outcome): (&str, Result<(), String>)| {
                if let Err(error) = outcome {
                    eprintln!("stack: {name} stopped: {error}");
                    failed = true;
                }
            };
            tokio::select! {
                () = service_kit::serve::shutdown_signal() => {
                    stop_front.send_replace(true);
                    while let Some(finished) = finished_receiver.recv().await {
                        let gateway_done = finished.0 == gateway::SERVICE_NAME;
                        report(finished);
                        if gateway_done {
                            break;
                        }
                    }
                }
                Some(finished) = finished_receiver.recv() => report(finished),
            }
            stop_front.send_replace(true);
            stop_back.send_replace(true);
            while let Some(finished) = finished_receiver.recv().await {
                report(finished);
            }
            failed
        });
    for thread in threads {
        let _ = thread.join();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
