//! The user service as a process of its own.

fn main() -> std::process::ExitCode {
    service_kit::launch::main(user::Settings::from_env())
}
