//! End-to-end fixture: a real OpenID Provider (node-oidc-provider), `jwt-authz serve`, a real Envoy
//! with the ext_authz filter pointed at it, and an echo upstream that reports the headers it got.
//! Everything listens on 127.0.0.1; every child process is killed when the fixture drops, and on a
//! failing test the tail of each process's logs is printed (set E2E_KEEP_LOGS=1 to keep the log
//! directory of passing tests too). Missing tools are a failure, never a skip.

#![allow(dead_code)] // each test binary uses a different subset

use std::{
    collections::BTreeMap,
    fs::File,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::HeaderMap, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// The audience jwt-authz accepts (the provider's main resource).
pub const API_AUDIENCE: &str = "https://api.jwt-authz.test";
/// Same audience as [`API_AUDIENCE`], but the provider gives its tokens a 1 s lifetime.
pub const SHORT_LIVED_RESOURCE: &str = "https://api.jwt-authz.test/short-lived";
/// A resource whose tokens carry an audience jwt-authz does not accept.
pub const OTHER_RESOURCE: &str = "https://other.jwt-authz.test";

const CLIENT_ID: &str = "e2e-client";
const CLIENT_SECRET: &str = "e2e-secret";
const SETUP_HINT: &str = "run scripts/setup-e2e (installs Envoy into .venv and oidc-provider into tests/e2e/node_modules)";

/// Awaits `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

// === impl Proc ===

/// A child process that is killed when dropped. Its stdout/stderr go to files in the fixture's
/// directory; if the thread is panicking (a failed assertion) their tails are printed first.
pub struct Proc {
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, dir: &Path, extra_logs: &[PathBuf]) -> Proc {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout log"))
            .stderr(File::create(&stderr).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; {SETUP_HINT}"));
        let mut logs = vec![stdout, stderr];
        logs.extend_from_slice(extra_logs);
        Proc {
            name: name.to_string(),
            child,
            logs,
        }
    }

    fn stdout_path(&self) -> &Path {
        &self.logs[0]
    }

    /// Fails the test if the process has already exited (it should be serving).
    #[track_caller]
    fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited early with {status}", self.name);
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGTERM, then SIGKILL if it is still running after a grace period; reaps it. Safe to call
    /// twice. The polite signal first lets Envoy flush its access log and jwt-authz drain.
    fn kill(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if termed {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn print_tails(&self) {
        for path in &self.logs {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "----- {} : last {} lines of {} -----",
                self.name,
                tail.len(),
                path.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Stop first: Envoy flushes its access log on SIGTERM.
        self.kill();
        if std::thread::panicking() {
            self.print_tails();
        }
    }
}

// === impl Upstream ===

/// What the echo upstream saw: header name → every value, in order.
#[derive(Debug)]
pub struct Echo {
    pub headers: BTreeMap<String, Vec<String>>,
    /// The path and query the upstream received.
    pub path: String,
}

impl Echo {
    /// The single value of `name`; fails if the header is absent or repeated.
    #[track_caller]
    pub fn one(&self, name: &str) -> &str {
        match self.headers.get(name).map(Vec::as_slice) {
            Some([v]) => v.as_str(),
            other => panic!(
                "upstream expected exactly one `{name}` header, saw {other:?}; all: {self:#?}"
            ),
        }
    }
}

struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        map.entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Json(json!({ "headers": map, "path": path }))
}

impl Upstream {
    async fn start() -> Upstream {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new().fallback(echo).with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind echo upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("echo upstream");
        });
        Upstream { addr, hits, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl Reply ===

/// A response as received by the client in front of Envoy.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The upstream's echo of what it received; fails unless the request was allowed.
    #[track_caller]
    pub fn echo(&self) -> Echo {
        assert_eq!(
            self.status, 200,
            "expected the request to reach the upstream: {self:#?}"
        );
        let v: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("upstream body is not JSON ({e}): {self:#?}"));
        let headers = serde_json::from_value(v["headers"].clone()).expect("echo headers");
        let path = v["path"].as_str().expect("echo path").to_owned();
        Echo { headers, path }
    }

    /// The `WWW-Authenticate` challenge of a 401.
    #[track_caller]
    pub fn challenge(&self) -> &str {
        assert_eq!(
            self.status, 401,
            "expected 401 from jwt-authz via Envoy: {self:#?}"
        );
        self.header("www-authenticate")
            .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {self:#?}"))
    }

    /// The `error` member of a JSON deny body.
    pub fn json_error(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.get("error")?.as_str().map(str::to_string)
    }
}

// === impl Token ===

/// An access token and its decoded (unverified) header and claims.
#[derive(Debug, Clone)]
pub struct Token {
    pub raw: String,
    pub header: Value,
    pub claims: Value,
}

impl Token {
    fn parse(raw: String) -> Token {
        let part = |i: usize| -> Value {
            let seg = raw
                .split('.')
                .nth(i)
                .unwrap_or_else(|| panic!("token is not a JWS: {raw}"));
            let bytes = URL_SAFE_NO_PAD
                .decode(seg)
                .unwrap_or_else(|e| panic!("token segment {i} is not base64url ({e}): {raw}"));
            serde_json::from_slice(&bytes).expect("token segment is JSON")
        };
        Token {
            header: part(0),
            claims: part(1),
            raw,
        }
    }

    #[track_caller]
    pub fn claim(&self, name: &str) -> &str {
        self.claims[name]
            .as_str()
            .unwrap_or_else(|| panic!("token has no string `{name}` claim: {:#}", self.claims))
    }

    /// The same token with one character in the middle of its signature changed (the middle,
    /// because the last base64url character of a signature partly encodes padding bits).
    pub fn tampered(&self) -> String {
        let sig_start = self.raw.rfind('.').expect("JWS has a signature") + 1;
        let i = sig_start + (self.raw.len() - sig_start) / 2;
        let mut bytes = self.raw.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_ne!(tampered, self.raw);
        tampered
    }

    /// Seconds from now until `exp` (negative once expired).
    pub fn secs_to_expiry(&self) -> f64 {
        let exp = self.claims["exp"].as_f64().expect("numeric exp");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        exp - now
    }
}

// === impl E2e ===

/// Paths to the external tools the e2e test needs.
struct Tools {
    envoy: PathBuf,
    node: PathBuf,
    provider_dir: PathBuf,
}

impl Tools {
    /// Finds Envoy and Node + oidc-provider, or fails the test saying how to install them.
    fn locate() -> Tools {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let envoy = std::env::var_os("ENVOY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/envoy"));
        assert!(
            envoy.is_file(),
            "Envoy not found at {} (set ENVOY_BIN to override): {SETUP_HINT}",
            envoy.display()
        );
        let node = std::env::var_os("NODE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("node"));
        let node_ok = Command::new(&node)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            node_ok,
            "node ({}) does not run: {SETUP_HINT}",
            node.display()
        );
        let provider_dir = root.join("tests/e2e");
        assert!(
            provider_dir
                .join("node_modules/oidc-provider/package.json")
                .is_file(),
            "{} has no node_modules/oidc-provider: {SETUP_HINT}",
            provider_dir.display()
        );
        Tools {
            envoy,
            node,
            provider_dir,
        }
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(format!("{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// What a suite changes in the system: jwt-authz's policy and the Envoy configuration.
pub struct Setup {
    /// YAML appended to jwt-authz's base configuration (rules, upstream_headers, …).
    pub authz_policy: String,
    /// An Envoy config template with the placeholders of tests/e2e/envoy.yaml.tmpl.
    pub envoy_template: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            authz_policy: String::new(),
            envoy_template: include_str!("../e2e/envoy.yaml.tmpl"),
        }
    }
}

/// The running system: provider → jwt-authz ← Envoy → upstream.
pub struct E2e {
    pub issuer: String,
    /// Base URL of Envoy's listener; requests sent here go through ext_authz.
    pub envoy_url: String,
    dir: PathBuf,
    tools: Tools,
    provider_port: u16,
    authz_admin_port: u16,
    /// jwt-authz's config file (watched: rewriting it is a hot reload) and its fixed part.
    authz_config: PathBuf,
    authz_base: String,
    http: reqwest::Client,
    upstream: Upstream,
    // Field order is drop order: stop Envoy first, the provider last.
    envoy: Proc,
    authz: Proc,
    provider: Proc,
}

const STARTUP: Duration = Duration::from_secs(30);

impl E2e {
    /// Starts everything for the test `name` (its logs go to a scratch dir named after it).
    pub async fn start(name: &str) -> E2e {
        Self::start_with(name, Setup::default()).await
    }

    /// As [`E2e::start`], with jwt-authz's policy and the Envoy template from `setup`.
    pub async fn start_with(name: &str, setup: Setup) -> E2e {
        Self::start_with_issuers(name, setup, "").await
    }

    /// As [`E2e::start_with`], with `extra_issuers` (YAML items of jwt-authz's `issuers:` list,
    /// indented by two spaces) trusted besides the provider.
    pub async fn start_with_issuers(name: &str, setup: Setup, extra_issuers: &str) -> E2e {
        let tools = Tools::locate();
        let dir = scratch_dir(name);
        let [provider_port, grpc_port, admin_port, envoy_port, envoy_admin_port, http_port] =
            crate::ports::free_ports();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");

        let (provider, issuer) = start_provider(&tools, &dir, provider_port, "e2e-key-1").await;
        let upstream = Upstream::start().await;
        let authz_base = format!(
            "{}{extra_issuers}",
            authz_base_config(&issuer, [grpc_port, admin_port, http_port])
        );
        let authz_config = dir.join("jwt-authz.yaml");
        std::fs::write(&authz_config, format!("{authz_base}{}", setup.authz_policy))
            .expect("write jwt-authz config");
        let authz = start_authz(&http, &dir, &authz_config, admin_port).await;
        let envoy = start_envoy(
            &tools,
            &http,
            &dir,
            setup.envoy_template,
            EnvoyPorts {
                listen: envoy_port,
                admin: envoy_admin_port,
                authz_grpc: grpc_port,
                authz_http: http_port,
                upstream: upstream.addr.port(),
            },
        )
        .await;

        E2e {
            issuer,
            envoy_url: format!("http://127.0.0.1:{envoy_port}"),
            dir,
            tools,
            provider_port,
            authz_admin_port: admin_port,
            authz_config,
            authz_base,
            http,
            upstream,
            envoy,
            authz,
            provider,
        }
    }

    /// A client_credentials access token for `resource` (RFC 8707), from the provider's /token.
    pub async fn token(&self, resource: &str) -> Token {
        self.token_with_scope(resource, "read write").await
    }

    /// As [`E2e::token`], asking for `scope` (the provider grants `read`, `write` or both).
    pub async fn token_with_scope(&self, resource: &str, scope: &str) -> Token {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("resource", resource)
            .finish();
        let resp = within(
            Duration::from_secs(10),
            "POST /token to the provider",
            self.http
                .post(format!("{}/token", self.issuer))
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send(),
        )
        .await
        .expect("token request");
        let status = resp.status();
        let text = within(Duration::from_secs(10), "token body", resp.text())
            .await
            .expect("token body");
        assert!(status.is_success(), "provider /token said {status}: {text}");
        let v: Value = serde_json::from_str(&text).expect("token response is JSON");
        let raw = v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {text}"))
            .to_string();
        let token = Token::parse(raw);
        assert_eq!(
            token.header["typ"], "at+jwt",
            "RFC 9068 token expected: {:#}",
            token.header
        );
        token
    }

    /// GET `path` through Envoy, with an optional bearer token and extra request headers.
    pub async fn get(&self, path: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, bearer, headers).await
    }

    /// `method path` through Envoy, with an optional bearer token and extra request headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.envoy_url));
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = within(Duration::from_secs(10), "request through Envoy", req.send())
            .await
            .expect("request through Envoy");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = within(Duration::from_secs(10), "body from Envoy", resp.text())
            .await
            .expect("body from Envoy");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// How many requests the upstream has received.
    pub fn upstream_hits(&self) -> usize {
        self.upstream.hits.load(Ordering::SeqCst)
    }

    /// Stops the provider and starts a new one on the same port (same issuer) signing under
    /// `kid`: a key rotation, as jwt-authz sees it. jwt-authz and Envoy keep running.
    pub async fn rotate_provider_key(&mut self, kid: &str) {
        self.provider.kill();
        let (provider, issuer) =
            start_provider(&self.tools, &self.dir, self.provider_port, kid).await;
        assert_eq!(
            issuer, self.issuer,
            "restarted provider must keep the issuer"
        );
        // Replacing the field drops (and kills) the old, already-stopped process.
        self.provider = provider;
        self.authz.assert_running();
    }

    /// How many checks jwt-authz denied with metric reason `reason` (from its /metrics, summed
    /// over front ends): tells *why* a request was denied, not just that it was.
    pub async fn denials(&self, reason: &str) -> u64 {
        let text = self.metrics().await;
        let reason_label = format!("reason=\"{reason}\"");
        text.lines()
            .filter(|l| l.starts_with("jwt_authz_checks_total{"))
            .filter(|l| l.contains("decision=\"deny\"") && l.contains(&reason_label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// jwt-authz's /metrics text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.authz_admin_port);
        within(Duration::from_secs(10), "GET jwt-authz /metrics", async {
            let resp = self.http.get(&url).send().await.expect("GET /metrics");
            assert_eq!(resp.status(), 200, "GET {url}");
            resp.text().await.expect("metrics body")
        })
        .await
    }

    /// Replaces jwt-authz's policy (the part after the base config) in its config file, which
    /// jwt-authz watches. Written to a temporary file and renamed, so that jwt-authz never reads
    /// a half-written file (a ConfigMap update swaps a symlink the same way).
    pub fn rewrite_authz_policy(&self, policy: &str) {
        let tmp = self.authz_config.with_extension("yaml.tmp");
        std::fs::write(&tmp, format!("{}{policy}", self.authz_base)).expect("write new config");
        std::fs::rename(&tmp, &self.authz_config).expect("replace config");
    }

    /// Envoy's access log so far (flushed every 100 ms).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy-access.log")).unwrap_or_default()
    }

    /// Where this fixture's configs and logs are written.
    pub fn scratch_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for E2e {
    fn drop(&mut self) {
        let keep = std::env::var_os("E2E_KEEP_LOGS").is_some_and(|v| !v.is_empty() && v != "0");
        if std::thread::panicking() || keep {
            eprintln!("e2e logs kept in {}", self.dir.display());
        } else {
            // Stop the processes before removing the files they write.
            self.envoy.kill();
            self.authz.kill();
            self.provider.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn start_provider(tools: &Tools, dir: &Path, port: u16, kid: &str) -> (Proc, String) {
    let mut cmd = Command::new(&tools.node);
    cmd.current_dir(&tools.provider_dir)
        .arg("provider.mjs")
        .args(["--port", &port.to_string(), "--kid", kid]);
    let mut proc = Proc::spawn(&format!("provider-{kid}"), cmd, dir, &[]);
    let deadline = Instant::now() + STARTUP;
    loop {
        let out = std::fs::read_to_string(proc.stdout_path()).unwrap_or_default();
        if let Some(url) = out.lines().find_map(|l| l.strip_prefix("READY ")) {
            return (proc, url.trim().to_string());
        }
        proc.assert_running();
        assert!(
            Instant::now() < deadline,
            "provider printed no READY line within {STARTUP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// jwt-authz's listeners and issuer; a suite's policy is appended to it.
fn authz_base_config(issuer: &str, [grpc_port, admin_port, http_port]: [u16; 3]) -> String {
    // Leeway 0 s so that a 1 s token is rejected as soon as it expires. The forward-auth endpoint
    // is what Envoy's ext_authz http_service calls (tests/e2e/envoy-http.yaml.tmpl).
    format!(
        "listen:\n  grpc: 127.0.0.1:{grpc_port}\n  admin: 127.0.0.1:{admin_port}\n\
         forward_auth:\n  listen: 127.0.0.1:{http_port}\n  original_request: envoy\n  \
         path_prefix: /ext_authz\n\
         realm: jwt-authz\n\
         drain_timeout: 2s\n\
         issuers:\n  - issuer: {issuer}\n    audiences: [\"{API_AUDIENCE}\"]\n    leeway: 0s\n"
    )
}

async fn start_authz(
    http: &reqwest::Client,
    dir: &Path,
    config_path: &Path,
    admin_port: u16,
) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jwt-authz"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config_path)
        .env("JWT_AUTHZ_LOG", "info,jwt_authz=debug")
        .env("NO_COLOR", "1")
        .env_remove("JWT_AUTHZ_CONFIG")
        .env_remove("JWT_AUTHZ_ISSUER")
        .env_remove("JWT_AUTHZ_AUDIENCE")
        .env_remove("JWT_AUTHZ_GRPC_LISTEN")
        .env_remove("JWT_AUTHZ_ADMIN_LISTEN");
    let mut proc = Proc::spawn("jwt-authz", cmd, dir, &[]);
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    wait_for_200(http, &mut proc, &readyz).await;
    proc
}

struct EnvoyPorts {
    listen: u16,
    admin: u16,
    authz_grpc: u16,
    authz_http: u16,
    upstream: u16,
}

/// Fills the placeholders of an Envoy template (tests/e2e/envoy.yaml.tmpl and its variants);
/// fails on any left unfilled.
fn render_envoy_config(template: &str, ports: &EnvoyPorts, access_log: &Path) -> String {
    let rendered = template
        .replace("{{LISTEN_PORT}}", &ports.listen.to_string())
        .replace("{{ADMIN_PORT}}", &ports.admin.to_string())
        .replace("{{AUTHZ_GRPC_PORT}}", &ports.authz_grpc.to_string())
        .replace("{{AUTHZ_HTTP_PORT}}", &ports.authz_http.to_string())
        .replace("{{UPSTREAM_PORT}}", &ports.upstream.to_string())
        .replace("{{ACCESS_LOG}}", &access_log.display().to_string());
    assert!(
        !rendered.contains("{{"),
        "unfilled placeholder in the Envoy template:\n{rendered}"
    );
    rendered
}

async fn start_envoy(
    tools: &Tools,
    http: &reqwest::Client,
    dir: &Path,
    template: &str,
    ports: EnvoyPorts,
) -> Proc {
    let config_path = dir.join("envoy.yaml");
    let log_path = dir.join("envoy.log");
    let access_log = dir.join("envoy-access.log");
    std::fs::write(
        &config_path,
        render_envoy_config(template, &ports, &access_log),
    )
    .expect("write envoy.yaml");
    // Concurrent Envoys (other tests of this binary) must not share a hot-restart base id. The
    // admin port is unique per test process (tests/support/ports.rs) and free on this machine.
    let base_id = u32::from(ports.admin);
    let mut cmd = Command::new(&tools.envoy);
    cmd.arg("-c")
        .arg(&config_path)
        .args(["--base-id", &base_id.to_string(), "--concurrency", "1"])
        // Access-log lines reach the file within 100 ms (tests read it; the default is 10 s).
        .args(["--file-flush-interval-msec", "100"])
        // Startup at info is 100+ lines of extension lists; keep warnings and the ext_authz story.
        .args([
            "--log-level",
            "warning",
            "--component-log-level",
            "ext_authz:debug",
        ])
        .arg("--log-path")
        .arg(&log_path);
    let mut proc = Proc::spawn("envoy", cmd, dir, &[log_path, access_log]);
    wait_for_200(
        http,
        &mut proc,
        &format!("http://127.0.0.1:{}/ready", ports.admin),
    )
    .await;
    // /ready is LIVE once listeners are initialized; make sure ours accepts connections.
    let listen = format!("127.0.0.1:{}", ports.listen);
    within(STARTUP, "Envoy's listener to accept connections", async {
        while tokio::net::TcpStream::connect(&listen).await.is_err() {
            proc.assert_running();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    proc
}

/// Polls `url` until it answers 200, failing if `proc` exits or `STARTUP` passes.
async fn wait_for_200(http: &reqwest::Client, proc: &mut Proc, url: &str) {
    let deadline = Instant::now() + STARTUP;
    let mut last: String;
    loop {
        proc.assert_running();
        let attempt = tokio::time::timeout(Duration::from_secs(2), http.get(url).send()).await;
        match attempt {
            Ok(Ok(resp)) if resp.status() == 200 => return,
            Ok(Ok(resp)) => last = format!("status {}", resp.status()),
            Ok(Err(e)) => last = format!("error {e}"),
            Err(_) => last = "timed out".into(),
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready within {STARTUP:?}: GET {url} → {last}",
            proc.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
