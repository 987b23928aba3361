//! The slack service as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::launch::main(slack::Settings::from_env())
}
