//! A TCP load balancer on a loopback port, routing as a Kubernetes Service does: each new
//! connection goes to the next backend whose readiness probe last answered 2xx (probed every
//! 100 ms); a backend that is not ready gets no new connection, and keeps those it has. With no
//! backend ready, a connection is closed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

const PROBE_PERIOD: Duration = Duration::from_millis(100);

struct Backend {
    /// `host:port`.
    address: String,
    ready: AtomicBool,
}

pub struct Balancer {
    address: SocketAddr,
    /// Its own runtime, so it works in synchronous and asynchronous tests alike.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Balancer {
    /// Balances a new loopback port over `backends`: each one's `host:port` and the URL of its
    /// readiness probe.
    pub fn start(backends: &[(String, String)]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the balancer");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let address = listener.local_addr().expect("a bound address");
        let pool: Arc<Vec<Backend>> = Arc::new(
            backends
                .iter()
                .map(|(address, _)| Backend {
                    address: address.clone(),
                    ready: AtomicBool::new(false),
                })
                .collect(),
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("a probe client");
        for (index, (_, probe)) in backends.iter().enumerate() {
            let (pool, client, probe) = (Arc::clone(&pool), client.clone(), probe.clone());
            runtime.spawn(async move {
                loop {
                    let ready = matches!(
                        client.get(&probe).send().await,
                        Ok(response) if response.status().is_success()
                    );
                    pool[index].ready.store(ready, Ordering::Relaxed);
                    tokio::time::sleep(PROBE_PERIOD).await;
                }
            });
        }
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a listener");
            let next = AtomicUsize::new(0);
            while let Ok((mut client, _)) = listener.accept().await {
                let start = next.fetch_add(1, Ordering::Relaxed);
                let chosen = (0..pool.len())
                    .map(|offset| &pool[(start + offset) % pool.len()])
                    .find(|backend| backend.ready.load(Ordering::Relaxed))
                    .map(|backend| backend.address.clone());
                let Some(chosen) = chosen else {
                    continue; // no endpoint: the connection is dropped
                };
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&chosen).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            address,
            runtime: Some(runtime),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
