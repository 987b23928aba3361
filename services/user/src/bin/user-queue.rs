//! user-queue as a process of its own: creates users from `create_user` commands.

use std::process::ExitCode;

use telemetry::{Telemetry, TelemetryConfig};
use user::queue::QueueSettings;

fn main() -> ExitCode {
    let (settings, config) = match (QueueSettings::from_env(), TelemetryConfig::from_env()) {
        (Ok(settings), Ok(config)) => (settings, config),
        (Err(error), _) => return fail(&error),
        (_, Err(error)) => return fail(&error),
    };
    let telemetry = match Telemetry::init(user::QUEUE_SERVICE_NAME, user::VERSION, &config) {
        Ok(telemetry) => telemetry,
        Err(error) => return fail(&error),
    };
    let metrics = telemetry.metrics().clone();
    let outcome = telemetry.run(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        user::queue::run(
            settings,
            metrics,
            listener,
            service_kit::serve::shutdown_signal(),
        )
        .await
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => fail(&error),
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("user-queue: {error}");
    ExitCode::FAILURE
}
