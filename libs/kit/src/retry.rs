//! Waiting for a dependency with exponential backoff: the one loop every process uses to reach
//! Postgres or RabbitMQ at start-up and after losing it.

use std::future::Future;
use std::time::Duration;

/// The first pause between two attempts; each next one doubles, up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_millis(100);
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Calls `attempt` until it succeeds or fails for good (`retry` says no), pausing with
/// exponential backoff between attempts and logging each failure with what is being reached.
pub async fn with_backoff<T, E, F, Fut>(
    what: &str,
    mut attempt: F,
    retry: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut pause = FIRST_PAUSE;
    for attempt_number in 1u32.. {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if retry(&error) => {
                tracing::warn!(
                    attempt = attempt_number,
                    retry_in_ms = pause.as_millis() as u64,
                    %error,
                    "{what} is not reachable yet"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the retry loop only ends by returning")
}

/// Calls `attempt` until it succeeds, however long that takes: for a dependency the process
/// cannot work without and that will come back (a broker restarting).
pub async fn until_ok<T, E, F, Fut>(what: &str, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    match with_backoff(what, attempt, |_| true).await {
        Ok(value) => value,
        Err(_) => unreachable!("every failure is retried"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_what_may_pass_and_stops_at_what_cannot() {
        let calls = Cell::new(0);
        let outcome: Result<u32, String> = with_backoff(
            "the thing",
            || {
                calls.set(calls.get() + 1);
                let call = calls.get();
                async move {
                    if call < 4 {
                        Err("down".into())
                    } else {
                        Ok(call)
                    }
                }
            },
            |_| true,
        )
        .await;
        assert_eq!(outcome, Ok(4));

        calls.set(0);
        let outcome: Result<u32, String> = with_backoff(
            "the thing",
            || {
                calls.set(calls.get() + 1);
                async { Err("refused for good".into()) }
            },
            |error: &String| error == "down",
        )
        .await;
        assert_eq!(outcome, Err("refused for good".into()));
        assert_eq!(calls.get(), 1);
    }
}
