//! `noa-server serve`: one HTTP listener for everything — the OpenAI API, `/health` and MCP at
//! `/mcp` — behind the access checks and a body limit. It stops on SIGTERM or SIGINT: MCP
//! sessions are closed, requests in flight get a few seconds to finish, then it exits 0.

use crate::access::{self, Access};
use crate::mcp::NoaMcp;
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest request body, for every route.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// How long requests in flight may run on after a stop signal.
const DRAIN: Duration = Duration::from_secs(5);

pub async fn serve(listen: SocketAddr, mcp: NoaMcp, access: Access) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.clone())
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    if access.has_token() {
        // Behind a token the Host check (against DNS rebinding) is moot, and clients reach us
        // by names and addresses we cannot know.
        config = config.disable_allowed_hosts();
    }
    let engine = mcp.engine().clone();
    let service: StreamableHttpService<NoaMcp, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(mcp.clone()), Default::default(), config);
    let app = crate::openai::routes(engine)
        .nest_service("/mcp", service)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            access::guard,
        ));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving the OpenAI API at /v1, MCP at /mcp");
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let stop = stop.clone();
        async move { stop.cancelled().await }
    });
    let signalled = {
        let stop = stop.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping");
            stop.cancel();
            tokio::time::sleep(DRAIN).await;
        }
    };
    tokio::select! {
        result = server => result.context("the HTTP server failed")?,
        () = signalled => tracing::warn!("requests still running after {DRAIN:?}; exiting"),
    }
    Ok(())
}

/// SIGTERM or SIGINT.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
