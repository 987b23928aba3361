//! The user service as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::process::main(
        user::SERVICE_NAME,
        user::VERSION,
        user::Settings::from_env(),
        |settings| settings.listen,
        user::run,
    )
}
