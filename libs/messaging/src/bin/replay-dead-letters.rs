//! `replay-dead-letters <queue>`: moves the messages parked in `<queue>.dead` back to
//! `<queue>` (see `messaging::dead_letters`), on the broker at `AMQP_URL`.

use std::process::ExitCode;

use messaging::topology::CONSUMER_QUEUES;

fn main() -> ExitCode {
    let names: Vec<&str> = CONSUMER_QUEUES.iter().map(|queue| queue.name).collect();
    let requested = std::env::args().nth(1).unwrap_or_default();
    let Some(queue) = CONSUMER_QUEUES.iter().find(|queue| queue.name == requested) else {
        eprintln!(
            "usage: replay-dead-letters <queue>, one of: {}",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    };
    let url = match messaging::amqp_url(&settings::Env) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("replay-dead-letters: {error}");
            return ExitCode::FAILURE;
        }
    };
    let broker = telemetry::redact_url(&url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let connection = match messaging::connect(&url).await {
            Ok(connection) => connection,
            Err(error) => {
                eprintln!("replay-dead-letters: cannot connect to {broker}: {error}");
                return ExitCode::FAILURE;
            }
        };
        match messaging::dead_letters::replay(&connection, queue).await {
            Ok(moved) => {
                println!(
                    "replayed {moved} message(s) from {} to {}",
                    queue.dead_letter_queue(),
                    queue.name
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("replay-dead-letters: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
