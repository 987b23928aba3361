//! The gateway as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::process::main(
        gateway::SERVICE_NAME,
        gateway::VERSION,
        gateway::Settings::from_env(),
        |settings| settings.listen,
        gateway::run,
    )
}
