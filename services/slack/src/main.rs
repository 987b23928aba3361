//! The slack service as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::process::main(
        slack::SERVICE_NAME,
        slack::VERSION,
        slack::Settings::from_env(),
        |settings| settings.listen,
        slack::startup::run,
    )
}
