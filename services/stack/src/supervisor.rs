//! Supervising the services of one process: they share one runtime (sized to the machine, or
//! to `TOKIO_WORKER_THREADS`), each on its own task with its own telemetry pipeline, health and
//! shutdown; a stop signal stops the front (the gateway) first and, once it has drained its
//! requests, the services behind it, which still answered meanwhile. A service that ends on its
//! own stops them all.

use std::future::Future;
use std::num::NonZeroUsize;
use std::time::Duration;

use service_kit::{Launch, LaunchError};
use tokio::sync::{mpsc, watch};

type Finished = (&'static str, Result<(), LaunchError>);

/// How long the runtime may take to stop once every service has returned.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts `launch` on a task of its own, stopping when `stop` turns true; it reports to
/// `finished` when it has returned.
fn start(launch: Launch, stop: &watch::Receiver<bool>, finished: &mpsc::UnboundedSender<Finished>) {
    let (stop, finished) = (stop.clone(), finished.clone());
    let name = launch.name();
    telemetry::spawn(async move {
        let outcome = launch.serve(service_kit::serve::stopped(stop)).await;
        let _ = finished.send((name, outcome));
    });
}

/// Runs `front` and `back` on one runtime of `workers` threads (tokio's default: one per
/// core) until `signal` (then front first, as the module says) or until one of them ends;
/// returns the services that failed, with why.
pub fn run(
    front: Vec<Launch>,
    back: Vec<Launch>,
    workers: Option<NonZeroUsize>,
    signal: impl Future<Output = ()>,
) -> Vec<(&'static str, LaunchError)> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        runtime.worker_threads(workers.get());
    }
    let runtime = runtime
        .enable_all()
        .thread_name("stack-worker")
        .build()
        .expect("a runtime for the stack");
    let failures = runtime.block_on(supervise(front, back, signal));
    runtime.shutdown_timeout(STOP_TIMEOUT);
    failures
}

async fn supervise(
    front: Vec<Launch>,
    back: Vec<Launch>,
    signal: impl Future<Output = ()>,
) -> Vec<(&'static str, LaunchError)> {
    let (stop_front, front_stopped) = watch::channel(false);
    let (stop_back, back_stopped) = watch::channel(false);
    let (finished, mut reports) = mpsc::unbounded_channel();
    let front_names: Vec<&str> = front.iter().map(Launch::name).collect();
    for launch in front {
        start(launch, &front_stopped, &finished);
    }
    for launch in back {
        start(launch, &back_stopped, &finished);
    }
    drop(finished);

    let mut failures = Vec::new();
    let mut note = |(name, outcome): Finished| {
        if let Err(error) = outcome {
            failures.push((name, error));
        }
    };
    let mut front_running = front_names.len();
    tokio::select! {
        () = signal => {
            stop_front.send_replace(true);
            while front_running > 0 {
                let Some(report) = reports.recv().await else { break };
                if front_names.contains(&report.0) {
                    front_running -= 1;
                }
                note(report);
            }
        }
        Some(report) = reports.recv() => note(report),
    }
    stop_front.send_replace(true);
    stop_back.send_replace(true);
    while let Some(report) = reports.recv().await {
        note(report);
    }
    failures
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use service_kit::{Service, Shutdown};
    use telemetry::{Metrics, TelemetryConfig};
    use tokio::net::TcpListener;

    use super::*;

    /// A service that notes when it stops, and can fail at once.
    struct Noting {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail: bool,
        drain: Duration,
    }

    macro_rules! service {
        ($type:ident, $name:literal) => {
            struct $type(Noting);
            impl Service for $type {
                const NAME: &'static str = $name;
                const VERSION: &'static str = "test";
                type Error = std::io::Error;
                fn listen(&self) -> SocketAddr {
                    SocketAddr::from(([127, 0, 0, 1], 0))
                }
                async fn run(
                    self,
                    _metrics: Metrics,
                    _listener: TcpListener,
                    shutdown: Shutdown,
                ) -> std::io::Result<()> {
                    let Noting {
                        name,
                        log,
                        fail,
                        drain,
                    } = self.0;
                    if fail {
                        return Err(std::io::Error::other("broke"));
                    }
                    shutdown.await;
                    log.lock().unwrap().push(format!("{name} asked"));
                    tokio::time::sleep(drain).await;
                    log.lock().unwrap().push(format!("{name} done"));
                    Ok(())
                }
            }
        };
    }
    service!(Front, "front");
    service!(Back, "back");

    fn noting(name: &'static str, log: &Arc<Mutex<Vec<String>>>, fail: bool) -> Noting {
        Noting {
            name,
            log: Arc::clone(log),
            fail,
            drain: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_stop_signal_drains_the_front_before_the_back_is_asked() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = TelemetryConfig::silent();
        let front = Launch::new(Front(noting("front", &log, false)), &config).unwrap();
        let back = Launch::new(Back(noting("back", &log, false)), &config).unwrap();
        let failures = run(vec![front], vec![back], None, async {
            tokio::time::sleep(Duration::from_millis(200)).await
        });
        assert!(failures.is_empty());
        assert_eq!(
            *log.lock().unwrap(),
            ["front asked", "front done", "back asked", "back done"]
        );
    }

    #[test]
    fn a_service_that_fails_stops_the_others_and_is_reported() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = TelemetryConfig::silent();
        let front = Launch::new(Front(noting("front", &log, false)), &config).unwrap();
        let back = Launch::new(Back(noting("back", &log, true)), &config).unwrap();
        let failures = run(vec![front], vec![back], None, std::future::pending());
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "back");
        assert_eq!(failures[0].1.to_string(), "broke");
        assert!(log.lock().unwrap().contains(&"front done".to_owned()));
    }
}
