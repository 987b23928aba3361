//! A small HTTP (or HTTPS) server on a random loopback port, on a runtime of its own so that
//! synchronous and asynchronous tests alike can use it, stopped when dropped.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;

use crate::tls::{TestCa, TlsListener};

pub(crate) struct TestServer {
    address: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub(crate) fn start(router: Router) -> Self {
        Self::serve(router, None)
    }

    /// Serves HTTPS with a certificate of `ca`.
    pub(crate) fn start_tls(router: Router, ca: &TestCa) -> Self {
        Self::serve(router, Some(ca))
    }

    fn serve(router: Router, ca: Option<&TestCa>) -> Self {
        let acceptor = ca.map(TestCa::acceptor);
        let tls = acceptor.is_some();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let address = listener.local_addr().expect("a bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the test server");
            runtime.block_on(async move {
                let tcp = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let stopped = async {
                    let _ = stopped.await;
                };
                let _ = match acceptor {
                    Some(acceptor) => {
                        axum::serve(TlsListener { tcp, acceptor }, router)
                            .with_graceful_shutdown(stopped)
                            .await
                    }
                    None => {
                        axum::serve(tcp, router)
                            .with_graceful_shutdown(stopped)
                            .await
                    }
                };
            });
        });
        Self {
            address,
            tls,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://` when it serves TLS.
    pub(crate) fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
