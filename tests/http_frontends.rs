//! Integration: the HTTP front ends — the forward-auth endpoint (Traefik/nginx/ingress-nginx/Envoy
//! HTTP conventions) and the reverse proxy — on 127.0.0.1:0, against a real HTTP issuer and a
//! small real app (tests/support/upstream.rs). One test per behaviour.

mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::body::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use jwt_authz::{
    config::Config,
    dev::SigningKey,
    http::{
        forward_auth::{ForwardAuthConfig, OriginalRequest},
        proxy::{ProxyConfig, UpstreamProtocol},
    },
};
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
use upstream::{hex_sha256, pattern_chunks, TestApp, CHUNK};

const AUD: &str = "https://api.test";
/// Generous bound on any single step; a hang fails the test instead of stalling the suite.
const STEP: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?}: {what}"))
}

// === fixture ===

/// An issuer, the app, and jwt-authz with forward-auth and the proxy in front of the app.
struct Fixture {
    key: SigningKey,
    issuer: TestIssuer,
    app: TestApp,
    authz: Running,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        Self::start_with(|_| {}).await
    }

    /// `tune` may change the config (see [`fa`] and [`proxy`]) before jwt-authz starts.
    async fn start_with(tune: impl FnOnce(&mut Config)) -> Fixture {
        let key = SigningKey::generate(Alg::ES256, Some("k1"));
        let issuer = TestIssuer::start(&[&key]).await;
        let app = TestApp::start().await;
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config::default();
        config.listen.grpc = loopback;
        config.listen.admin = loopback;
        config.issuers = vec![issuer_config(&issuer.issuer, AUD)];
        config.forward_auth = Some(ForwardAuthConfig::new(loopback));
        config.proxy = Some(ProxyConfig::new(loopback, app.url()));
        tune(&mut config);
        let authz = Running::start_config(config).await;
        authz.wait_ready().await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(STEP)
            .build()
            .unwrap();
        Fixture {
            key,
            issuer,
            app,
            authz,
            http,
        }
    }

    fn token(&self, sub: &str) -> String {
        self.key.mint(&self.issuer.claims(AUD, sub))
    }

    fn token_without_sub(&self) -> String {
        let mut claims = self.issuer.claims(AUD, "x");
        claims.as_object_mut().unwrap().remove("sub");
        self.key.mint(&claims)
    }

    fn forward_auth_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authz.forward_auth.unwrap())
    }

    fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authz.proxy.unwrap())
    }

    /// A Traefik-style forward-auth request for `GET /orders/7?x=1` on `shop.test`.
    fn traefik(&self, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .get(self.forward_auth_url("/"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "shop.test")
            .header("x-forwarded-uri", "/orders/7?x=1");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req
    }

    /// GET `path` through the proxy; returns the response and, if it reached the app, its echo.
    async fn via_proxy(&self, path: &str, headers: &[(&str, &str)]) -> (Reply, Option<Value>) {
        let mut req = self.http.get(self.proxy_url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let reply = Reply::from(within("GET through the proxy", req.send()).await.unwrap()).await;
        let echo = (reply.status == 200)
            .then(|| serde_json::from_str(&reply.body).ok())
            .flatten();
        (reply, echo)
    }

    async fn checks(&self, frontend: &str, decision: &str, reason: &str) -> u64 {
        let needle = format!(
            "jwt_authz_checks_total{{decision=\"{decision}\",frontend=\"{frontend}\",reason=\"{reason}\"}} "
        );
        self.authz
            .metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&needle)?.parse().ok())
            .unwrap_or(0)
    }
}

fn fa(config: &mut Config) -> &mut ForwardAuthConfig {
    config.forward_auth.as_mut().unwrap()
}

fn proxy(config: &mut Config) -> &mut ProxyConfig {
    config.proxy.as_mut().unwrap()
}

/// Rules: `/public…` and `/healthz` anonymous, `DELETE` denied, everything else needs a token.
fn public_routes(config: &mut Config) {
    config.rules = serde_norway::from_str(
        "- name: health\n  match: {path: {exact: /healthz}}\n  action: anonymous\n\
         - name: public\n  match: {path: {prefix: /public}}\n  action: anonymous\n\
         - name: no-deletes\n  match: {methods: [DELETE]}\n  action: deny\n",
    )
    .expect("rules parse");
}

/// The issuer's tokens may lack `sub` (RFC 9068 requires it).
fn legacy_profile(config: &mut Config) {
    config.issuers[0].profile = jwt_authz::authz::profile::Profile::Legacy;
}

fn resource_metadata(config: &mut Config) {
    config.protected_resource =
        Some(serde_norway::from_str("resource: https://api.test").expect("parses"));
}

/// What a client got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = within("response body", resp.text()).await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// The values of header `name` the app received.
fn seen<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn raw_client() -> Client<HttpConnector, BoxBody<Bytes, Infallible>> {
    Client::builder(TokioExecutor::new()).build_http()
}

// === forward-auth ===

#[tokio::test]
async fn forward_auth_allows_with_identity_headers_for_the_proxy_to_copy() {
    let f = Fixture::start().await;
    let reply = Reply::from(f.traefik(Some(&f.token("alice"))).send().await.unwrap()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-jwt-sub"), Some("alice"));
    assert_eq!(reply.header("x-jwt-iss"), Some(f.issuer.issuer.as_str()));
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn forward_auth_denies_missing_token_with_bare_challenge() {
    let f = Fixture::start().await;
    let reply = Reply::from(f.traefik(None).send().await.unwrap()).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="jwt-authz""#)
    );
    assert_eq!(reply.json()["error"], "unauthorized");
}

#[tokio::test]
async fn forward_auth_denial_is_the_same_as_grpc() {
    let f = Fixture::start().await;
    let expired = {
        let mut claims = f.issuer.claims(AUD, "alice");
        claims["exp"] = serde_json::json!(now() - 3600);
        f.key.mint(&claims)
    };
    let http = Reply::from(f.traefik(Some(&expired)).send().await.unwrap()).await;
    let grpc = f.authz.client().await.bearer(&expired).await;
    assert_eq!(http.status, grpc.http_status);
    assert_eq!(
        http.header("www-authenticate"),
        Some(grpc.www_authenticate())
    );
    assert!(
        grpc.www_authenticate().contains(r#"error="invalid_token""#),
        "{grpc:?}"
    );
    assert_eq!(http.header("content-type"), Some("application/json"));
    assert_eq!(http.body, grpc.body);
}

#[tokio::test]
async fn forward_auth_malformed_authorization_header_is_400_invalid_request() {
    let f = Fixture::start().await;
    let reply = Reply::from(
        f.traefik(None)
            .header("authorization", "Bearer a b")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_request""#));
}

#[tokio::test]
async fn forward_auth_without_forwarded_uri_is_refused_as_a_proxy_misconfiguration() {
    let f = Fixture::start().await;
    let reply = Reply::from(
        f.http
            .get(f.forward_auth_url("/"))
            .header("x-forwarded-method", "GET")
            .header("authorization", format!("Bearer {}", f.token("alice")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400, "never an allow: {reply:?}");
    assert!(reply.header("x-jwt-sub").is_none());
    assert!(
        reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("X-Forwarded-Uri"),
        "{reply:?}"
    );
    assert_eq!(f.checks("forward_auth", "allow", "ok").await, 0);
}

#[tokio::test]
async fn forward_auth_refuses_a_repeated_forwarded_uri() {
    let f = Fixture::start().await;
    let reply = Reply::from(
        f.traefik(Some(&f.token("alice")))
            .header("x-forwarded-uri", "/public")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[tokio::test]
async fn forward_auth_reads_ingress_nginx_original_url() {
    let f = Fixture::start_with(|c| fa(c).original_request = OriginalRequest::Original).await;
    let send = |url: &str| {
        f.http
            .get(f.forward_auth_url("/auth"))
            .header("x-original-method", "POST")
            .header("x-original-url", url)
            .header("authorization", format!("Bearer {}", f.token("alice")))
            .send()
    };
    let ok = Reply::from(send("https://shop.test/orders?id=7").await.unwrap()).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-jwt-sub"), Some("alice"));
    let bad = Reply::from(send("not-a-url").await.unwrap()).await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn forward_auth_envoy_mode_strips_the_path_prefix() {
    let f = Fixture::start_with(|c| {
        fa(c).original_request = OriginalRequest::Envoy;
        fa(c).path_prefix = "/ext_authz".into();
    })
    .await;
    let token = format!("Bearer {}", f.token("alice"));
    let ok = Reply::from(
        f.http
            .delete(f.forward_auth_url("/ext_authz/orders/7"))
            .header("authorization", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-jwt-sub"), Some("alice"));
    assert!(ok.header("x-envoy-auth-headers-to-remove").is_none());

    let outside = Reply::from(
        f.http
            .get(f.forward_auth_url("/orders/7"))
            .header("authorization", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(outside.status, 400, "{outside:?}");
}

#[tokio::test]
async fn forward_auth_envoy_mode_asks_envoy_to_remove_identity_headers_it_has_no_value_for() {
    let f = Fixture::start_with(|c| {
        legacy_profile(c);
        fa(c).original_request = OriginalRequest::Envoy;
    })
    .await;
    let reply = Reply::from(
        f.http
            .get(f.forward_auth_url("/"))
            .header("authorization", format!("Bearer {}", f.token_without_sub()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.header("x-jwt-sub").is_none());
    assert_eq!(
        reply.header("x-envoy-auth-headers-to-remove"),
        Some("x-jwt-sub")
    );
}

#[tokio::test]
async fn forward_auth_checks_are_counted_under_their_own_frontend_label() {
    let f = Fixture::start().await;
    f.traefik(Some(&f.token("alice"))).send().await.unwrap();
    f.traefik(None).send().await.unwrap();
    assert_eq!(f.checks("forward_auth", "allow", "ok").await, 1);
    assert_eq!(f.checks("forward_auth", "deny", "missing_token").await, 1);
    assert_eq!(f.checks("grpc", "allow", "ok").await, 0);
    assert_eq!(f.checks("proxy", "allow", "ok").await, 0);
}

#[tokio::test]
async fn forward_auth_matches_rules_against_the_forwarded_method_and_uri() {
    let f = Fixture::start_with(public_routes).await;
    let ask = |method: &str, uri: &str| {
        f.http
            .get(f.forward_auth_url("/"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-host", "shop.test")
            .header("x-forwarded-uri", uri)
            .send()
    };
    let public = Reply::from(ask("GET", "/public/page?x=1").await.unwrap()).await;
    assert_eq!(public.status, 200, "anonymous route: {public:?}");
    assert!(public.header("x-jwt-sub").is_none());
    let private = Reply::from(ask("GET", "/private").await.unwrap()).await;
    assert_eq!(private.status, 401, "{private:?}");
    let delete = Reply::from(ask("DELETE", "/orders/7").await.unwrap()).await;
    assert_eq!(delete.status, 403, "DELETE is denied by rule: {delete:?}");
    let public_delete = Reply::from(ask("DELETE", "/public/page").await.unwrap()).await;
    assert_eq!(public_delete.status, 200, "the first matching rule wins");
}

#[tokio::test]
async fn forward_auth_envoy_mode_matches_rules_against_the_path_without_prefix() {
    let f = Fixture::start_with(|c| {
        public_routes(c);
        fa(c).original_request = OriginalRequest::Envoy;
        fa(c).path_prefix = "/ext_authz".into();
    })
    .await;
    let public = Reply::from(
        f.http
            .get(f.forward_auth_url("/ext_authz/public/x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(public.status, 200, "{public:?}");
    let denied = Reply::from(
        f.http
            .delete(f.forward_auth_url("/ext_authz/orders/1"))
            .bearer_auth(f.token("alice"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(denied.status, 403, "{denied:?}");
}

#[tokio::test]
async fn forward_auth_serves_the_protected_resource_metadata_directly() {
    let f = Fixture::start_with(resource_metadata).await;
    let doc = Reply::from(
        f.http
            .get(f.forward_auth_url("/.well-known/oauth-protected-resource"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc.status, 200, "{doc:?}");
    assert_eq!(doc.json()["resource"], "https://api.test");
    let denied = Reply::from(f.traefik(None).send().await.unwrap()).await;
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .contains("resource_metadata="),
        "{denied:?}"
    );
}

// === reverse proxy ===

#[tokio::test]
async fn proxy_forwards_allowed_request_with_identity_and_forwarded_headers() {
    let f = Fixture::start().await;
    let bearer = format!("Bearer {}", f.token("alice"));
    let (reply, echo) = f
        .via_proxy("/orders/7?x=1", &[("authorization", &bearer)])
        .await;
    let echo = echo.unwrap_or_else(|| panic!("not forwarded: {reply:?}"));
    assert_eq!(echo["uri"], "/orders/7?x=1");
    assert_eq!(seen(&echo, "x-jwt-sub"), ["alice"]);
    assert_eq!(seen(&echo, "x-jwt-iss"), [f.issuer.issuer.as_str()]);
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    let proxy = f.authz.proxy.unwrap().to_string();
    assert_eq!(seen(&echo, "x-forwarded-host"), [proxy.as_str()]);
    assert_eq!(seen(&echo, "host"), [proxy.as_str()], "Host is preserved");
    assert_eq!(
        seen(&echo, "authorization"),
        [bearer.as_str()],
        "the app may read the token too"
    );
    assert_eq!(f.checks("proxy", "allow", "ok").await, 1);
}

#[tokio::test]
async fn proxy_denies_with_challenge_and_never_reaches_the_app() {
    let f = Fixture::start().await;
    let (reply, _) = f.via_proxy("/orders", &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="jwt-authz""#)
    );
    let (bad, _) = f
        .via_proxy("/orders", &[("authorization", "Bearer not.a.jwt")])
        .await;
    assert_eq!(bad.status, 401);
    assert!(bad
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
    assert_eq!(bad.json()["error"], "invalid_token");
    assert_eq!(f.app.hits(), 0);
    assert_eq!(f.checks("proxy", "deny", "missing_token").await, 1);
}

#[tokio::test]
async fn proxy_removes_spoofed_identity_headers() {
    let f = Fixture::start_with(legacy_profile).await;
    let spoofed = [
        ("x-jwt-sub", "admin"),
        ("x-jwt-iss", "https://evil.example"),
    ];
    let bearer = format!("Bearer {}", f.token("alice"));
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(spoofed);
    let (_, echo) = f.via_proxy("/", &headers).await;
    let echo = echo.unwrap();
    assert_eq!(seen(&echo, "x-jwt-sub"), ["alice"]);
    assert_eq!(seen(&echo, "x-jwt-iss"), [f.issuer.issuer.as_str()]);

    // A token without `sub`: the client's copy is removed, not passed through.
    let bearer = format!("Bearer {}", f.token_without_sub());
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(spoofed);
    let (_, echo) = f.via_proxy("/", &headers).await;
    let echo = echo.unwrap();
    assert!(seen(&echo, "x-jwt-sub").is_empty(), "{echo:#}");
    assert_eq!(seen(&echo, "x-jwt-iss"), [f.issuer.issuer.as_str()]);
}

#[tokio::test]
async fn proxy_replaces_client_forwarded_headers_unless_trusted() {
    let spoof = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.test"),
        ("x-real-ip", "6.6.6.6"),
    ];
    let f = Fixture::start().await;
    let bearer = format!("Bearer {}", f.token("alice"));
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(spoof);
    let echo = f.via_proxy("/", &headers).await.1.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_ne!(seen(&echo, "x-forwarded-host"), ["evil.test"]);
    assert!(seen(&echo, "x-real-ip").is_empty());

    let f = Fixture::start_with(|c| proxy(c).trust_forwarded_headers = true).await;
    let bearer = format!("Bearer {}", f.token("alice"));
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(spoof);
    let echo = f.via_proxy("/", &headers).await.1.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["evil.test"]);
}

#[tokio::test]
async fn proxy_drops_hop_by_hop_headers() {
    let f = Fixture::start().await;
    let bearer = format!("Bearer {}", f.token("alice"));
    let echo = f
        .via_proxy(
            "/",
            &[
                ("authorization", &bearer),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("x-end-to-end", "1"),
            ],
        )
        .await
        .1
        .unwrap();
    assert!(seen(&echo, "x-hop").is_empty(), "{echo:#}");
    assert!(seen(&echo, "proxy-authorization").is_empty(), "{echo:#}");
    assert_eq!(seen(&echo, "x-end-to-end"), ["1"]);
}

#[tokio::test]
async fn proxy_streams_a_64_mib_upload_and_download_intact() {
    const SIZE: usize = 64 * 1024 * 1024;
    let f = Fixture::start().await;
    let client = raw_client();
    let bearer = format!("Bearer {}", f.token("alice"));

    let chunks = pattern_chunks(SIZE).map(|c| Ok::<_, Infallible>(Frame::data(c)));
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let req = http::Request::post(f.proxy_url("/upload"))
        .header("authorization", &bearer)
        .body(body)
        .unwrap();
    let resp = within("64 MiB upload", client.request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = within("upload reply", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let got: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(got["bytes"], SIZE);
    assert_eq!(got["sha256"], hex_sha256(pattern_chunks(SIZE)));

    let req = http::Request::get(f.proxy_url(&format!("/download?bytes={SIZE}")))
        .header("authorization", &bearer)
        .body(BoxBody::default())
        .unwrap();
    let resp = within("64 MiB download", client.request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let expected = resp.headers()["x-sha256"].to_str().unwrap().to_owned();
    let mut body = resp.into_body();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut received = 0;
    while let Some(frame) = within("download frame", body.frame()).await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len();
            ctx.update(&data);
        }
    }
    assert_eq!(received, SIZE);
    assert_eq!(upstream::hex(ctx.finish().as_ref()), expected);
    assert_eq!(expected, hex_sha256(pattern_chunks(SIZE)));
}

/// The app sees the first upload chunk before the client has sent the second, and the client
/// gets the first download chunk before the app has produced the second: no whole-body buffering.
#[tokio::test]
async fn proxy_streams_bodies_without_buffering_them() {
    let f = Fixture::start().await;
    let client = raw_client();
    let bearer = format!("Bearer {}", f.token("alice"));

    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    let req = http::Request::post(f.proxy_url("/gated-upload"))
        .header("authorization", &bearer)
        .body(body.boxed())
        .unwrap();
    let pending = tokio::spawn(client.request(req));
    tx.send_data(upstream::pattern(0, CHUNK)).await.unwrap();
    within(
        "the app to see the first upload chunk while the rest is unsent",
        f.app.first_upload_chunk(),
    )
    .await;
    tx.send_data(upstream::pattern(1, CHUNK)).await.unwrap();
    drop(tx);
    let resp = within("upload reply", pending).await.unwrap().unwrap();
    let got: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(got["bytes"], 2 * CHUNK);

    let req = http::Request::get(f.proxy_url("/gated-download"))
        .header("authorization", &bearer)
        .body(BoxBody::default())
        .unwrap();
    let resp = within("download headers", client.request(req))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut received = 0;
    while received < CHUNK {
        let frame = within(
            "the first download chunk while the app holds the rest back",
            body.frame(),
        )
        .await
        .expect("body continues")
        .unwrap();
        received += frame.into_data().map_or(0, |d| d.len());
    }
    f.app.release_download();
    while let Some(frame) = within("the rest of the download", body.frame()).await {
        received += frame.unwrap().into_data().map_or(0, |d| d.len());
    }
    assert_eq!(received, 2 * CHUNK);
}

#[tokio::test]
async fn proxy_passes_websocket_upgrades_through() {
    let f = Fixture::start().await;
    let mut req = format!("ws://{}/ws", f.authz.proxy.unwrap())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", f.token("alice")).parse().unwrap(),
    );
    req.headers_mut()
        .insert("x-jwt-sub", "spoofed".parse().unwrap());
    let (mut ws, resp) = within("WebSocket handshake", tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    use futures_util::{SinkExt, StreamExt};
    let hello = within("greeting", ws.next()).await.unwrap().unwrap();
    assert_eq!(hello, Message::text("hello alice"));
    for msg in [
        Message::text("ping through the proxy"),
        Message::binary(vec![0u8, 1, 2, 255]),
    ] {
        ws.send(msg.clone()).await.unwrap();
        let echoed = within("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, msg);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn proxy_denies_websocket_handshake_without_token() {
    let f = Fixture::start().await;
    let req = format!("ws://{}/ws", f.authz.proxy.unwrap())
        .into_client_request()
        .unwrap();
    match within("WebSocket handshake", tokio_tungstenite::connect_async(req)).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            assert!(resp.headers().contains_key("www-authenticate"));
        }
        other => panic!("expected a 401 handshake, got {other:?}"),
    }
    assert_eq!(f.app.hits(), 0);
}

#[tokio::test]
async fn proxy_serves_h2c_clients() {
    let f = Fixture::start().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = within(
        "h2c request",
        h2.get(f.proxy_url("/h2?x=1"))
            .bearer_auth(f.token("alice"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let reply = Reply::from(resp).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let echo = reply.json();
    assert_eq!(echo["uri"], "/h2?x=1");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(seen(&echo, "x-jwt-sub"), ["alice"]);
    let proxy = f.authz.proxy.unwrap().to_string();
    assert_eq!(
        seen(&echo, "host"),
        [proxy.as_str()],
        ":authority becomes Host"
    );
}

#[tokio::test]
async fn proxy_speaks_h2c_to_the_app_when_configured() {
    let f = Fixture::start_with(|c| proxy(c).upstream_protocol = UpstreamProtocol::Http2).await;
    let bearer = format!("Bearer {}", f.token("alice"));
    let (reply, echo) = f.via_proxy("/", &[("authorization", &bearer)]).await;
    let echo = echo.unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(seen(&echo, "x-jwt-sub"), ["alice"]);
}

#[tokio::test]
async fn proxy_reuses_connections_to_the_app() {
    let f = Fixture::start().await;
    let bearer = format!("Bearer {}", f.token("alice"));
    for _ in 0..20 {
        let (reply, _) = f.via_proxy("/", &[("authorization", &bearer)]).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(f.app.hits(), 20);
    assert_eq!(
        f.app.connections(),
        1,
        "20 sequential requests should share one kept-alive connection"
    );
}

#[tokio::test]
async fn proxy_answers_502_at_once_when_the_app_is_down() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let f = Fixture::start_with(|c| {
        proxy(c).upstream = format!("http://{closed}").parse().unwrap();
    })
    .await;
    let started = std::time::Instant::now();
    let bearer = format!("Bearer {}", f.token("alice"));
    let (reply, _) = f.via_proxy("/", &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.json()["error"], "bad_gateway");
    assert!(
        reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("not accepting connections"),
        "{reply:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn proxy_answers_504_when_the_app_does_not_respond_in_time() {
    let f = Fixture::start_with(|c| proxy(c).response_timeout = Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let bearer = format!("Bearer {}", f.token("alice"));
    let (reply, _) = f.via_proxy("/hang", &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.json()["error"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn proxy_serves_anonymous_routes_without_a_token_and_still_strips_identity_headers() {
    let f = Fixture::start_with(public_routes).await;
    let (health, _) = f.via_proxy("/healthz", &[]).await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body, "ok");

    let (reply, echo) = f.via_proxy("/public/page", &[("x-jwt-sub", "admin")]).await;
    let echo = echo.unwrap_or_else(|| panic!("{reply:?}"));
    assert!(seen(&echo, "x-jwt-sub").is_empty(), "{echo:#}");

    let (private, _) = f.via_proxy("/private", &[]).await;
    assert_eq!(private.status, 401);
    assert_eq!(f.app.hits(), 2);
}

#[tokio::test]
async fn proxy_applies_method_rules() {
    let f = Fixture::start_with(public_routes).await;
    let reply = Reply::from(
        f.http
            .delete(f.proxy_url("/orders/7"))
            .bearer_auth(f.token("alice"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(f.app.hits(), 0);
}

#[tokio::test]
async fn proxy_serves_the_protected_resource_metadata_and_points_challenges_to_it() {
    let f = Fixture::start_with(resource_metadata).await;
    let (doc, _) = f
        .via_proxy("/.well-known/oauth-protected-resource", &[])
        .await;
    assert_eq!(doc.status, 200, "{doc:?}");
    assert_eq!(doc.json()["resource"], "https://api.test");
    assert_eq!(doc.json()["authorization_servers"][0], f.issuer.issuer);
    let (denied, _) = f.via_proxy("/orders", &[]).await;
    assert!(
        denied.header("www-authenticate").unwrap().contains(
            r#"resource_metadata="https://api.test/.well-known/oauth-protected-resource""#
        ),
        "{denied:?}"
    );
    assert_eq!(f.app.hits(), 0);
}

#[tokio::test]
async fn proxy_refuses_connect() {
    let f = Fixture::start().await;
    let client = raw_client();
    let req = http::Request::connect(f.authz.proxy.unwrap().to_string())
        .body(BoxBody::default())
        .unwrap();
    let resp = within("CONNECT", client.request(req)).await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(f.app.hits(), 0);
}
