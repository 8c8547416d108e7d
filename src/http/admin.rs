//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (every issuer has usable keys and the process is not draining). It never serves a
//! check, so it can stay on a port the outside world cannot reach. It shares the front ends'
//! accept loop ([`super::server::serve`]), so a slow client is dropped after the same
//! header-read timeout and h2c works here too.

use std::{future::Future, sync::Arc};

use axum::{
    body::Body, extract::State, http::StatusCode, response::IntoResponse, routing::get, Router,
};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::app::Shared;

/// Serves the admin routes until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/debug/keys", get(debug_keys))
        .with_state(shared);
    let handle = move |req: http::Request<hyper::body::Incoming>, _peer| {
        let mut app = app.clone();
        async move {
            match app.call(req.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    super::server::serve(listener, "admin", handle, shutdown).await
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let authorizer = shared.authorizer();
    for keys in authorizer.issuers() {
        keys.publish_age();
    }
    shared
        .metrics
        .cache_entries
        .set(authorizer.cached_tokens() as i64);
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        shared.metrics.render(),
    )
}

/// Per issuer: where keys come from, the public keys in use (kid, alg, fingerprint), when they
/// were fetched and will be refreshed, skipped entries and the last error. Never private data.
async fn debug_keys(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let stamp = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let authorizer = shared.authorizer();
    let issuers: Vec<serde_json::Value> = authorizer
        .issuers()
        .iter()
        .map(|k| {
            let set = k.current();
            serde_json::json!({
                "issuer": k.issuer.id,
                "jwks_uri": k.jwks_uri().map(|u| u.to_string()),
                "ready": k.is_ready(),
                "fetched_at": set.as_ref().map(|s| stamp(s.fetched_at)),
                "expires_at": k.next_refresh().map(stamp),
                "keys": set.as_ref().map(|s| s.keys().iter().map(|key| serde_json::json!({
                    "kid": key.kid.as_deref(),
                    "alg": key.alg.name(),
                    "fingerprint": format!("{:016x}", key.fingerprint),
                })).collect::<Vec<_>>()).unwrap_or_default(),
                "skipped": set.as_ref().map(|s| s.skipped().iter().map(|(kid, reason)| serde_json::json!({
                    "kid": kid,
                    "reason": reason.label(),
                })).collect::<Vec<_>>()).unwrap_or_default(),
                "last_error": k.last_error().map(|e| e.to_string()),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "issuers": issuers }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.is_ready() {
        return (StatusCode::OK, "ready\n".to_owned());
    }
    if shared.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining\n".to_owned(),
        );
    }
    let authorizer = shared.authorizer();
    let mut body = String::from("not ready\n");
    for keys in authorizer.issuers() {
        if !keys.is_ready() {
            let why = keys
                .last_error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "keys not loaded yet".into());
            body.push_str(&format!("issuer {}: {why}\n", keys.issuer.id));
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, body)
}
