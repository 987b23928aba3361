//! slack-queue as a process of its own: announces new users in `#user`.

fn main() -> std::process::ExitCode {
    service_kit::process::main(
        slack::QUEUE_SERVICE_NAME,
        slack::VERSION,
        slack::QueueSettings::from_env(),
        |settings| settings.listen,
        slack::queue::run,
    )
}
