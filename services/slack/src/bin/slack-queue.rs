//! slack-queue as a process of its own: announces new users in `#user`.

fn main() -> std::process::ExitCode {
    service_kit::launch::main(slack::QueueSettings::from_env())
}
