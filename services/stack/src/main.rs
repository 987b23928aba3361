//! Runs every service of the stack in one process, each on its default port with its own
//! runtime and telemetry pipeline (so each exports spans under its own name and serves its own
//! `/metrics`), against the local Postgres, Redis and RabbitMQ: the no-Docker way to run it all.
//!
//! Configuration is the same environment each service reads on its own, except that
//! `OTEL_SERVICE_NAME` is ignored here: every service keeps its own name.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use telemetry::{Telemetry, TelemetryConfig};
use tokio::sync::{mpsc, watch};

type ServiceFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One service, ready to run.
struct Launch {
    name: &'static str,
    listen: SocketAddr,
    telemetry: Telemetry,
    service: ServiceFuture,
}

fn user_service(config: &TelemetryConfig, stop: watch::Receiver<bool>) -> Result<Launch, String> {
    let settings = user::Settings::from_env().map_err(|error| error.to_string())?;
    let telemetry = Telemetry::init(user::SERVICE_NAME, user::VERSION, config)
        .map_err(|error| error.to_string())?;
    let metrics = telemetry.metrics().clone();
    let listen = settings.listen;
    let service = Box::pin(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
        user::run(
            settings,
            metrics,
            listener,
            service_kit::serve::stopped(stop),
        )
        .await
        .map_err(|error| error.to_string())
    });
    Ok(Launch {
        name: user::SERVICE_NAME,
        listen,
        telemetry,
        service,
    })
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
    let (stop, stop_receiver) = watch::channel(false);
    let launches = match [user_service]
        .into_iter()
        .map(|launch| launch(&config, stop_receiver.clone()))
        .collect::<Result<Vec<_>, _>>()
    {
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

    // Wait for a stop signal or for a service to end on its own; either stops them all.
    let failed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the launcher")
        .block_on(async move {
            let mut failed = false;
            tokio::select! {
                () = service_kit::serve::shutdown_signal() => {}
                Some((name, outcome)) = finished_receiver.recv() => {
                    if let Err(error) = outcome {
                        eprintln!("stack: {name} stopped: {error}");
                        failed = true;
                    }
                }
            }
            stop.send_replace(true);
            while let Some((name, outcome)) = finished_receiver.recv().await {
                if let Err(error) = outcome {
                    eprintln!("stack: {name} stopped: {error}");
                    failed = true;
                }
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
