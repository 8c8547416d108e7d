//! Test support shared by the integration suites: a scriptable, fault-injecting issuer (a real
//! HTTP server on 127.0.0.1:0 serving discovery and JWKS with keys minted in the test), an
//! in-process jwt-authz on 127.0.0.1:0, and a gRPC Check client.

#![allow(dead_code, unused_imports)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use envoy_types::{
    ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse},
    pb::envoy::service::auth::v3::{
        attribute_context::{HttpRequest, Request},
        authorization_client::AuthorizationClient,
        AttributeContext,
    },
};
use jwt_authz::{
    app::{App, Shared},
    config::{Config, IssuerConfig},
    dev::SigningKey,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub use jwt_authz::authz::alg::Alg;
pub use jwt_authz::dev::{access_token_claims, b64, now};

/// How the test issuer publishes its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataMode {
    /// `{issuer}/.well-known/openid-configuration`
    Oidc,
    /// Only RFC 8414 `/.well-known/oauth-authorization-server{path}`.
    Rfc8414,
}

/// What the issuer serves right now; tests change it between requests.
pub struct Script {
    pub keys: Vec<Value>,
    pub mode: MetadataMode,
    /// `issuer` written in the metadata (defaults to the real issuer URL).
    pub metadata_issuer: Option<String>,
    /// Status code for JWKS requests (200 = serve keys).
    pub jwks_status: u16,
    /// Status code for metadata requests (200 = serve).
    pub metadata_status: u16,
    pub jwks_delay: Duration,
    pub cache_control: Option<String>,
    /// Raw JWKS body instead of `keys` (e.g. garbage).
    pub jwks_body: Option<String>,
}

/// A real HTTP issuer on 127.0.0.1:0 whose behaviour each test scripts.
pub struct TestIssuer {
    pub addr: SocketAddr,
    /// The issuer identifier (`http://127.0.0.1:PORT` + path).
    pub issuer: String,
    pub path: String,
    pub script: Arc<Mutex<Script>>,
    counts: Arc<Counts>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    oidc: AtomicUsize,
    rfc8414: AtomicUsize,
    jwks: AtomicUsize,
    jwks_done: AtomicUsize,
    other: AtomicUsize,
}

#[derive(Clone)]
struct IssuerState {
    issuer: String,
    path: String,
    script: Arc<Mutex<Script>>,
    counts: Arc<Counts>,
}

impl TestIssuer {
    /// An issuer at the root path serving `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        Self::start_at("", keys).await
    }

    /// An issuer whose identifier has a path (e.g. `/realms/test`).
    pub async fn start_at(path: &str, keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}{path}");
        let script = Arc::new(Mutex::new(Script {
            keys: keys.iter().map(|k| k.public_jwk()).collect(),
            mode: MetadataMode::Oidc,
            metadata_issuer: None,
            jwks_status: 200,
            metadata_status: 200,
            jwks_delay: Duration::ZERO,
            cache_control: None,
            jwks_body: None,
        }));
        let counts = Arc::new(Counts::default());
        let state = IssuerState {
            issuer: issuer.clone(),
            path: path.to_owned(),
            script: script.clone(),
            counts: counts.clone(),
        };
        let app = Router::new().fallback(serve).with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            issuer,
            path: path.to_owned(),
            script,
            counts,
            _server: server,
        }
    }

    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.script.lock().unwrap().keys = keys.iter().map(|k| k.public_jwk()).collect();
    }

    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        self.script.lock().unwrap().keys = keys;
    }

    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap())
    }

    /// GETs of `/.well-known/openid-configuration`.
    pub fn oidc_requests(&self) -> usize {
        self.counts.oidc.load(Ordering::SeqCst)
    }
    /// GETs of `/.well-known/oauth-authorization-server…`.
    pub fn rfc8414_requests(&self) -> usize {
        self.counts.rfc8414.load(Ordering::SeqCst)
    }
    pub fn discovery_requests(&self) -> usize {
        self.oidc_requests() + self.rfc8414_requests()
    }
    pub fn jwks_requests(&self) -> usize {
        self.counts.jwks.load(Ordering::SeqCst)
    }
    /// JWKS requests answered (the delay elapsed).
    pub fn jwks_answered(&self) -> usize {
        self.counts.jwks_done.load(Ordering::SeqCst)
    }
    pub fn other_requests(&self) -> usize {
        self.counts.other.load(Ordering::SeqCst)
    }

    /// Claims for a valid access token from this issuer.
    pub fn claims(&self, audience: &str, sub: &str) -> Value {
        access_token_claims(&self.issuer, audience, sub, Duration::from_secs(300))
    }
}

async fn serve(State(s): State<IssuerState>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    // An issuer may end in '/' (Auth0, Entra ID v1): the well-known paths drop it (OIDC
    // Discovery §4, RFC 8414 §3.1), as real providers serve them.
    let base = s.path.trim_end_matches('/');
    let oidc_path = format!("{base}/.well-known/openid-configuration");
    let rfc_path = format!("/.well-known/oauth-authorization-server{base}");
    let jwks_path = format!("{base}/jwks");
    if path == oidc_path || path == rfc_path {
        let is_oidc = path == oidc_path;
        if is_oidc {
            s.counts.oidc.fetch_add(1, Ordering::SeqCst);
        } else {
            s.counts.rfc8414.fetch_add(1, Ordering::SeqCst);
        }
        let (mode, status, issuer) = {
            let sc = s.script.lock().unwrap();
            (sc.mode, sc.metadata_status, sc.metadata_issuer.clone())
        };
        if (mode == MetadataMode::Rfc8414) == is_oidc {
            return StatusCode::NOT_FOUND.into_response();
        }
        if status != 200 {
            return StatusCode::from_u16(status).unwrap().into_response();
        }
        let doc = json!({
            "issuer": issuer.unwrap_or_else(|| s.issuer.clone()),
            "jwks_uri": format!("{}/jwks", s.issuer.trim_end_matches('/')),
            "token_endpoint": format!("{}/token", s.issuer),
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            doc.to_string(),
        )
            .into_response();
    }
    if path == jwks_path {
        s.counts.jwks.fetch_add(1, Ordering::SeqCst);
        let (delay, status, body, cc) = {
            let sc = s.script.lock().unwrap();
            let body = sc
                .jwks_body
                .clone()
                .unwrap_or_else(|| json!({ "keys": sc.keys }).to_string());
            (
                sc.jwks_delay,
                sc.jwks_status,
                body,
                sc.cache_control.clone(),
            )
        };
        tokio::time::sleep(delay).await;
        s.counts.jwks_done.fetch_add(1, Ordering::SeqCst);
        if status != 200 {
            return StatusCode::from_u16(status).unwrap().into_response();
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/jwk-set+json".parse().unwrap(),
        );
        if let Some(cc) = cc {
            headers.insert(header::CACHE_CONTROL, cc.parse().unwrap());
        }
        return (headers, body).into_response();
    }
    s.counts.other.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND.into_response()
}

/// An issuer config for tests: short timeouts, no cooldown surprises unless a test sets them.
pub fn issuer_config(issuer: &str, audience: &str) -> IssuerConfig {
    let mut c = IssuerConfig::new(issuer, vec![audience.to_owned()]);
    c.unknown_kid_cooldown = Duration::ZERO;
    c.request_timeout = Duration::from_secs(5);
    c
}

/// A jwt-authz running in this process on loopback ports.
pub struct Running {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    /// The forward-auth endpoint, when the config enables it.
    pub forward_auth: Option<SocketAddr>,
    /// The reverse proxy, when the config enables it.
    pub proxy: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts jwt-authz with `issuers` (listeners on 127.0.0.1:0).
    pub async fn start(issuers: Vec<IssuerConfig>) -> Self {
        let mut config = Config::default();
        config.listen.grpc = "127.0.0.1:0".parse().unwrap();
        config.listen.admin = "127.0.0.1:0".parse().unwrap();
        config.issuers = issuers;
        Self::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Self {
        Self::run(App::bind(config).await.expect("app starts"))
    }

    /// Waits (up to 10 s) until /readyz says ready.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin);
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("jwt-authz did not become ready within 10 s");
    }

    pub async fn client(&self) -> Checker {
        Checker::connect(self.grpc).await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Starts jwt-authz from a config file, with hot reload of that file enabled.
    pub async fn start_file(path: &std::path::Path) -> Self {
        let config = Config::from_file(path).expect("valid config file");
        let app = App::bind(config).await.expect("app starts");
        let p = path.to_owned();
        let loader: jwt_authz::reload::ConfigLoader = Arc::new(move || Config::from_file(&p));
        let app = app.with_reload(loader, Some(path.to_owned()));
        Self::run(app)
    }

    fn run(app: App) -> Self {
        let grpc = app.grpc_addr();
        let admin = app.admin_addr();
        let forward_auth = app.forward_auth_addr();
        let proxy = app.proxy_addr();
        let shared = app.shared();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .expect("app runs");
        });
        Self {
            grpc,
            admin,
            forward_auth,
            proxy,
            shared,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A Check client.
#[derive(Clone)]
pub struct Checker {
    client: AuthorizationClient<Channel>,
}

/// The parts of a CheckResponse tests look at.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rpc_code: i32,
    pub http_status: u16,
    pub headers: HashMap<String, String>,
    pub remove: Vec<String>,
    pub remove_query: Vec<String>,
    /// `dynamic_metadata` as JSON (`null` when absent).
    pub metadata: Value,
    pub body: String,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.rpc_code == 0 && self.http_status == 200
    }
    pub fn www_authenticate(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .map(String::as_str)
            .unwrap_or("")
    }
    /// The `error_description` from the JSON body.
    pub fn description(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error_description"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Checker {
    pub async fn connect(addr: SocketAddr) -> Self {
        let client = AuthorizationClient::connect(format!("http://{addr}"))
            .await
            .expect("connect to jwt-authz");
        Self { client }
    }

    /// Checks a GET / with `Authorization: Bearer <token>`.
    pub async fn bearer(&self, token: &str) -> Outcome {
        self.headers(&[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// Checks a GET / with these headers.
    pub async fn headers(&self, headers: &[(&str, &str)]) -> Outcome {
        self.request("GET", "/", headers).await
    }

    /// Checks `method path` (host `api.test`) with these headers.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Outcome {
        let req = check_request(method, "api.test", path, headers);
        self.raw(req)
            .await
            .expect("Check succeeds at the gRPC level")
    }

    pub async fn raw(&self, req: CheckRequest) -> Result<Outcome, tonic::Status> {
        let mut client = self.client.clone();
        let resp = tokio::time::timeout(Duration::from_secs(20), client.check(req))
            .await
            .expect("Check answered within 20 s")?
            .into_inner();
        Ok(outcome(resp))
    }
}

pub fn check_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.into(),
                    host: host.into(),
                    path: path.into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn struct_json(s: envoy_types::pb::google::protobuf::Struct) -> Value {
    Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_json(v)))
            .collect(),
    )
}

fn value_json(v: envoy_types::pb::google::protobuf::Value) -> Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

fn outcome(resp: CheckResponse) -> Outcome {
    let rpc_code = resp.status.map(|s| s.code).unwrap_or(-1);
    let metadata = resp
        .dynamic_metadata
        .map(struct_json)
        .unwrap_or(Value::Null);
    match resp.http_response {
        Some(HttpResponse::OkResponse(ok)) => Outcome {
            rpc_code,
            http_status: 200,
            headers: ok
                .headers
                .into_iter()
                .filter_map(|h| h.header)
                .map(|h| (h.key, h.value))
                .collect(),
            remove: ok.headers_to_remove,
            remove_query: ok.query_parameters_to_remove,
            metadata,
            body: String::new(),
        },
        Some(HttpResponse::DeniedResponse(d)) => Outcome {
            rpc_code,
            http_status: d.status.map(|s| s.code as u16).unwrap_or(403),
            headers: d
                .headers
                .into_iter()
                .filter_map(|h| h.header)
                .map(|h| (h.key, h.value))
                .collect(),
            remove: Vec::new(),
            remove_query: Vec::new(),
            metadata,
            body: d.body,
        },
        _ => panic!("CheckResponse without an http_response"),
    }
}
