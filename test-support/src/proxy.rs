//! A TCP proxy on a loopback port that a test can cut and restore, to take a dependency
//! (Postgres, Redis, RabbitMQ) away from one service without touching the real server that
//! other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A one-shot fault: the first client bytes that contain this pattern, once forwarded to the
/// server, end the connection before its answer.
type Tripwire = Arc<Mutex<Option<Vec<u8>>>>;

/// Milliseconds each chunk from the server waits before it is passed on (a slow network).
type Latency = Arc<AtomicU64>;

pub struct TcpProxy {
    address: SocketAddr,
    /// `true` while connections are let through.
    open: watch::Sender<bool>,
    tripwire: Tripwire,
    latency: Latency,
    /// Its own runtime, so the proxy works in synchronous and asynchronous tests alike.
    runtime: Option<tokio::runtime::Runtime>,
}

impl TcpProxy {
    /// Starts forwarding a new loopback port to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let address = listener.local_addr().expect("a bound address");
        let (open, _) = watch::channel(true);
        let target = target.to_owned();
        let gate = open.clone();
        let tripwire = Tripwire::default();
        let armed = Arc::clone(&tripwire);
        let latency = Latency::default();
        let delay = Arc::clone(&latency);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a listener");
            while let Ok((client, _)) = listener.accept().await {
                let mut state = gate.subscribe();
                if !*state.borrow_and_update() {
                    continue; // cut: the connection is dropped at once
                }
                let target = target.clone();
                let armed = Arc::clone(&armed);
                let delay = Arc::clone(&delay);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    // The gate is looked at first, every time the connection wakes: bytes a
                    // client sends after `cut` returned must never reach the server (with no
                    // order, they sometimes did, and a write answered 503 had happened).
                    let tripped = tokio::select! {
                        biased;
                        _ = state.wait_for(|open| !*open) => false,
                        tripped = forward(&mut client_read, &mut server_write, &armed) => tripped,
                        () = back(&mut server_read, &mut client_write, &delay) => false,
                    };
                    if tripped {
                        // The client loses the connection now; the server keeps it a moment
                        // longer, so it surely acts on what it was sent.
                        drop((client_read, client_write));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
            }
        });
        Self {
            address,
            open,
            tripwire,
            latency,
            runtime: Some(runtime),
        }
    }

    /// Arms a one-shot fault: the next time a client sends bytes that contain `pattern` (a
    /// statement's parameter, say), they reach the server and the connection is dropped before
    /// the server's answer comes back: a write that happens, with its answer lost.
    pub fn drop_answer_to(&self, pattern: &[u8]) {
        assert!(!pattern.is_empty(), "an empty pattern would match anything");
        *self.tripwire.lock().unwrap() = Some(pattern.to_vec());
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Holds every answer from the server for `latency` before passing it on.
    pub fn set_latency(&self, latency: Duration) {
        self.latency
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

/// Copies server bytes to the client, each chunk after the proxy's latency, until either side
/// closes.
async fn back(
    server: &mut tokio::net::tcp::OwnedReadHalf,
    client: &mut tokio::net::tcp::OwnedWriteHalf,
    latency: &Latency,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match server.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = latency.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if client.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Copies client bytes to the server until either side closes (`false`), or until the
/// tripwire's bytes went through (`true`).
async fn forward(
    client: &mut tokio::net::tcp::OwnedReadHalf,
    server: &mut tokio::net::tcp::OwnedWriteHalf,
    tripwire: &Tripwire,
) -> bool {
    let contains =
        |bytes: &[u8], pattern: &[u8]| bytes.windows(pattern.len()).any(|w| w == pattern);
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        let bytes = &buffer[..read];
        if server.write_all(bytes).await.is_err() {
            return false;
        }
        let tripped = {
            let mut armed = tripwire.lock().unwrap();
            let hit = armed
                .as_ref()
                .is_some_and(|pattern| contains(bytes, pattern));
            if hit {
                *armed = None;
            }
            hit
        };
        if tripped {
            return true;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_byte_sent_after_a_cut_reaches_the_server() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpProxy::start(&server.local_addr().unwrap().to_string());
        // Which branch a wake-up polls first is a matter of chance: try it often enough.
        for _ in 0..50 {
            let mut client = TcpStream::connect(proxy.address()).await.unwrap();
            client.write_all(b"before").await.unwrap();
            let (mut connection, _) = server.accept().await.unwrap();
            let mut before = [0; 6];
            connection.read_exact(&mut before).await.unwrap();
            proxy.cut();
            let _ = client.write_all(b"after").await;
            // The proxy closes the connection; nothing else may come first.
            let mut after = Vec::new();
            let _ = connection.read_to_end(&mut after).await;
            assert_eq!(String::from_utf8_lossy(&after), "");
            proxy.restore();
        }
    }
}
