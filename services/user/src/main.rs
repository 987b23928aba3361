//! The user service as a process of its own.

use std::process::ExitCode;

use telemetry::{Telemetry, TelemetryConfig};
use user::Settings;

fn main() -> ExitCode {
    let (settings, config) = match (Settings::from_env(), TelemetryConfig::from_env()) {
        (Ok(settings), Ok(config)) => (settings, config),
        (Err(error), _) => return fail(&error),
        (_, Err(error)) => return fail(&error),
    };
    let telemetry = match Telemetry::init(user::SERVICE_NAME, user::VERSION, &config) {
        Ok(telemetry) => telemetry,
        Err(error) => return fail(&error),
    };
    let metrics = telemetry.metrics().clone();
    let outcome = telemetry.run(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        user::run(
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
    eprintln!("user: {error}");
    ExitCode::FAILURE
}
