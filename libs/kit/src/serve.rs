//! Serving a router: one task per connection, in the service's telemetry pipeline (so its
//! requests are traced and counted as that service's even on a runtime shared with others),
//! with the client's address for the request spans, and a graceful stop that lets in-flight
//! requests finish. What a slow or greedy client can hold is bounded: a request's headers must
//! arrive within [`HEADER_READ_TIMEOUT`] (half a request line is closed), a request is answered
//! 408 after [`REQUEST_TIMEOUT`], and past [`MAX_CONNECTIONS`] the next connection waits in the
//! listen backlog.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::Problem;
use tower::ServiceExt;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take, its body included, before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; WebSocket clients count until they leave.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Answers 408 to a request that takes longer than [`REQUEST_TIMEOUT`].
async fn bounded(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::request_timeout(REQUEST_TIMEOUT).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes in-flight requests
/// (upgraded connections, such as the feed's WebSockets, are the service's own to close).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Dropped, `stop` asks every connection to finish; each holds a receiver of `all_closed`
    // until it has.
    let (stop, stopping) = watch::channel(());
    let (all_closed, closed) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let router = router.layer(axum::middleware::from_fn(bounded));
    let room = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&room).acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait rather than spin, and go on.
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let (mut stopping, closed) = (stopping.clone(), closed.clone());
        telemetry::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.changed(), if !asked => {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop((closed, permit));
        });
    }
    drop(listener);
    drop(stop);
    drop(closed);
    all_closed.closed().await;
    Ok(())
}

/// Completes on SIGTERM (how orchestrators stop a container) or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// Completes once `stop` turns true, or its sender is gone: one stop signal shared by the parts
/// of a process (server, consumer, relay).
pub async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
