//! user-queue as a process of its own: creates users from `create_user` commands.

fn main() -> std::process::ExitCode {
    service_kit::launch::main(user::QueueSettings::from_env())
}
