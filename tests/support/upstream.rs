//! A small real HTTP application for the front-end tests, on 127.0.0.1:0 (HTTP/1.1 and h2c):
//! it echoes what it received, hashes streamed uploads, streams deterministic downloads, echoes
//! WebSocket messages, hangs on request, and counts the TCP connections it accepted.

#![allow(dead_code)] // each test binary uses a different subset

use std::{
    collections::{BTreeMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aws_lc_rs::digest;
use axum::{
    body::{Body, Bytes},
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        ConnectInfo, Query, Request, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Size of each chunk the app streams, and of [`pattern`] chunks.
pub const CHUNK: usize = 64 * 1024;

/// Chunk `index` of the deterministic byte stream /download serves (splitmix64 words).
pub fn pattern(index: u64, len: usize) -> Bytes {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The chunks of a `total`-byte pattern stream.
pub fn pattern_chunks(total: usize) -> impl Iterator<Item = Bytes> {
    (0..total.div_ceil(CHUNK)).map(move |i| pattern(i as u64, CHUNK.min(total - i * CHUNK)))
}

/// SHA-256, hex.
pub fn hex_sha256(data: impl IntoIterator<Item = Bytes>) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for chunk in data {
        ctx.update(&chunk);
    }
    hex(ctx.finish().as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct AppState {
    hits: AtomicUsize,
    peers: Mutex<HashSet<SocketAddr>>,
    /// /gated-download waits for this after its first chunk.
    release_download: Notify,
    /// /gated-upload signals this once its first chunk has arrived.
    first_upload_chunk: Notify,
}

/// The running app.
pub struct TestApp {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AppState::default());
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/upload", post(upload))
            .route("/gated-upload", post(gated_upload))
            .route("/download", get(download))
            .route("/gated-download", get(gated_download))
            .route("/ws", get(ws))
            .route("/hang", any(std::future::pending::<()>))
            .fallback(echo)
            .layer(axum::middleware::from_fn_with_state(state.clone(), count))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        TestApp { addr, state, task }
    }

    pub fn url(&self) -> url::Url {
        format!("http://{}", self.addr).parse().unwrap()
    }

    /// Requests the app has received.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Distinct TCP connections the app has served requests on.
    pub fn connections(&self) -> usize {
        self.state.peers.lock().unwrap().len()
    }

    /// Lets /gated-download send the rest of its body.
    pub fn release_download(&self) {
        self.state.release_download.notify_one();
    }

    /// Resolves once /gated-upload has received its first chunk.
    pub async fn first_upload_chunk(&self) {
        self.state.first_upload_chunk.notified().await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn count(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    state.peers.lock().unwrap().insert(peer);
    next.run(req).await
}

/// `{method, uri, version, headers: {name: [values]}}`.
async fn echo(req: Request) -> Json<Value> {
    Json(json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": header_map(req.headers()),
    }))
}

pub fn header_map(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}

/// Hashes the body as it streams in: `{bytes, sha256}`.
async fn upload(body: Body) -> Result<Json<Value>, StatusCode> {
    let mut stream = body.into_data_stream();
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut bytes = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        bytes += chunk.len();
        ctx.update(&chunk);
    }
    Ok(Json(
        json!({ "bytes": bytes, "sha256": hex(ctx.finish().as_ref()) }),
    ))
}

/// Signals after the first chunk, then counts the rest.
async fn gated_upload(State(state): State<Arc<AppState>>, body: Body) -> Json<Value> {
    let mut body = body;
    let mut bytes = 0usize;
    let mut first = true;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            bytes += data.len();
            if first && !data.is_empty() {
                first = false;
                state.first_upload_chunk.notify_one();
            }
        }
    }
    Json(json!({ "bytes": bytes }))
}

#[derive(Deserialize)]
struct Size {
    bytes: usize,
}

/// `bytes` bytes of the deterministic pattern, streamed chunk by chunk.
async fn download(Query(size): Query<Size>) -> Response {
    let chunks = pattern_chunks(size.bytes).map(Ok::<_, Infallible>);
    let mut resp = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
    resp.headers_mut().insert(
        "x-sha256",
        hex_sha256(pattern_chunks(size.bytes)).parse().unwrap(),
    );
    resp
}

/// One chunk, then the rest only after the test calls [`TestApp::release_download`].
async fn gated_download(State(state): State<Arc<AppState>>) -> Response {
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let state = state.clone();
        async move {
            match step {
                0 => Some((Ok::<_, Infallible>(pattern(0, CHUNK)), 1)),
                1 => {
                    state.release_download.notified().await;
                    Some((Ok(pattern(1, CHUNK)), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream).into_response()
}

/// Greets with the subject it was given, then echoes every message.
async fn ws(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let sub = headers
        .get("x-jwt-sub")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    upgrade.on_upgrade(move |socket| ws_echo(socket, sub))
}

async fn ws_echo(mut socket: WebSocket, sub: String) {
    if socket
        .send(Message::Text(format!("hello {sub}").into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(t) => Message::Text(t),
            Message::Binary(b) => Message::Binary(b),
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

/// Waits up to `limit` for `cond`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}
