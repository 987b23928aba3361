//! Supervising the services of one process: each runs on a thread of its own; a stop signal
//! stops the front (the gateway) first and, once it has drained its requests, the services
//! behind it, which still answered meanwhile. A service that ends on its own stops them all.

use std::future::Future;
use std::thread::JoinHandle;

use service_kit::{Launch, LaunchError};
use tokio::sync::{mpsc, watch};

type Finished = (&'static str, Result<(), LaunchError>);

/// Starts `launch` on a thread named after it, stopping when `stop` turns true; it reports to
/// `finished` when it has returned.
fn start(
    launch: Launch,
    stop: &watch::Receiver<bool>,
    finished: &mpsc::UnboundedSender<Finished>,
) -> JoinHandle<()> {
    let (stop, finished) = (stop.clone(), finished.clone());
    let name = launch.name();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let outcome = launch.run(service_kit::serve::stopped(stop));
            let _ = finished.send((name, outcome));
        })
        .expect("a thread per service")
}

/// Runs `front` and `back` until `signal` (then front first, as the module says) or until one
/// of them ends; returns the services that failed, with why.
pub fn run(
    front: Vec<Launch>,
    back: Vec<Launch>,
    signal: impl Future<Output = ()>,
) -> Vec<(&'static str, LaunchError)> {
    let (stop_front, front_stopped) = watch::channel(false);
    let (stop_back, back_stopped) = watch::channel(false);
    let (finished, mut reports) = mpsc::unbounded_channel();
    let front_names: Vec<&str> = front.iter().map(Launch::name).collect();
    let threads: Vec<JoinHandle<()>> = front
        .into_iter()
        .map(|launch| start(launch, &front_stopped, &finished))
        .chain(
            back.into_iter()
                .map(|launch| start(launch, &back_stopped, &finished)),
        )
        .collect();
    drop(finished);

    let failures = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the supervisor")
        .block_on(async move {
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
        });
    for thread in threads {
        let _ = thread.join();
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
        let failures = run(vec![front], vec![back], async {
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
        let failures = run(vec![front], vec![back], std::future::pending());
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "back");
        assert_eq!(failures[0].1.to_string(), "broke");
        assert!(log.lock().unwrap().contains(&"front done".to_owned()));
    }
}
