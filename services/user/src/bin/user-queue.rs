//! user-queue as a process of its own: creates users from `create_user` commands.

fn main() -> std::process::ExitCode {
    service_kit::process::main(
        user::QUEUE_SERVICE_NAME,
        user::VERSION,
        user::queue::QueueSettings::from_env(),
        |settings| settings.listen,
        user::queue::run,
    )
}
