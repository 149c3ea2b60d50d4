//! Waiting for the operating system's request to stop.

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM: what a process manager or container
/// runtime sends. Pair it with [`ServerHandle::shutdown`](super::ServerHandle::shutdown):
///
/// ```no_run
/// # async fn run(server: callapi_signal_ws::server::ServerHandle) {
/// callapi_signal_ws::server::shutdown_signal().await;
/// server.shutdown().await; // stop accepting, close sockets with 1001 "going away"
/// # }
/// ```
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
