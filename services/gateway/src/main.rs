//! The gateway as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::launch::main(gateway::Settings::from_env())
}
