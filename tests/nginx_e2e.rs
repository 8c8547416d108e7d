//! End-to-end: a real nginx (Debian package) with `auth_request` to jwt-authz's forward-auth
//! endpoint, in front of a small real app; jwt-authz trusts a real HTTP issuer with keys minted
//! here. The nginx config is tests/e2e/nginx.conf.tmpl, the shape README.md documents.
//!
//! Needs nginx: run `scripts/setup-nginx` once. Without it the tests fail (never skip);
//! `NGINX_BIN` overrides where nginx is looked up.

#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/ports.rs"]
mod ports;
mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::{net::SocketAddr, time::Duration};

use jwt_authz::{config::Config, dev::SigningKey, http::forward_auth::ForwardAuthConfig};
use nginx::Nginx;
use serde_json::Value;
use support::*;
use upstream::TestApp;

const AUD: &str = "https://api.test";

struct System {
    key: SigningKey,
    issuer: TestIssuer,
    app: TestApp,
    authz: Running,
    nginx: Nginx,
    http: reqwest::Client,
}

impl System {
    async fn start(name: &str) -> System {
        Self::start_with(name, |_| {}).await
    }

    async fn start_with(name: &str, tune: impl FnOnce(&mut Config)) -> System {
        let key = SigningKey::generate(Alg::RS256, Some("k1"));
        let issuer = TestIssuer::start(&[&key]).await;
        let app = TestApp::start().await;
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config::default();
        config.listen.grpc = loopback;
        config.listen.admin = loopback;
        config.issuers = vec![issuer_config(&issuer.issuer, AUD)];
        config.forward_auth = Some(ForwardAuthConfig::new(loopback));
        tune(&mut config);
        let authz = Running::start_config(config).await;
        authz.wait_ready().await;
        let forward_auth = authz.forward_auth.expect("forward-auth listener").port();
        let nginx = Nginx::start(name, forward_auth, app.addr.port()).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        System {
            key,
            issuer,
            app,
            authz,
            nginx,
            http,
        }
    }

    fn token(&self, sub: &str) -> String {
        self.key.mint(&self.issuer.claims(AUD, sub))
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        self.send(reqwest::Method::GET, path, headers).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.request(method, self.nginx.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("request through nginx");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body from nginx"))
    }
}

fn seen<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_allows_valid_token_and_copies_the_subject_upstream() {
    let sys = System::start("allow").await;
    let bearer = format!("Bearer {}", sys.token("alice"));
    let (status, _, body) = sys
        .get(
            "/orders/7?x=1",
            &[("authorization", &bearer), ("x-jwt-sub", "spoofed")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["uri"], "/orders/7?x=1");
    assert_eq!(seen(&echo, "x-jwt-sub"), ["alice"], "{echo:#}");
    assert_eq!(seen(&echo, "x-jwt-iss"), [sys.issuer.issuer.as_str()]);
    let m = sys.authz.metrics().await;
    assert!(
        m.contains(
            r#"jwt_authz_checks_total{decision="allow",frontend="forward_auth",reason="ok"} 1"#
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_denies_missing_token_with_the_bearer_challenge() {
    let sys = System::start("deny").await;
    let (status, headers, _) = sys.get("/orders", &[("x-jwt-sub", "spoofed")]).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer realm="jwt-authz""#),
        "nginx copies the challenge from the auth response"
    );
    assert_eq!(sys.app.hits(), 0, "a denied request reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_denies_invalid_token_with_invalid_token_error() {
    let sys = System::start("invalid").await;
    let other = SigningKey::generate(Alg::RS256, Some("k1"));
    let forged = other.mint(&sys.issuer.claims(AUD, "mallory"));
    let (status, headers, _) = sys
        .get("/", &[("authorization", &format!("Bearer {forged}"))])
        .await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(sys.app.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_drops_a_spoofed_subject_when_the_token_has_none() {
    // The legacy profile accepts a token without `sub` (RFC 9068 would refuse it).
    let sys = System::start_with("no_sub", |c| {
        c.issuers[0].profile = jwt_authz::authz::profile::Profile::Legacy;
    })
    .await;
    let mut claims = sys.issuer.claims(AUD, "x");
    claims.as_object_mut().unwrap().remove("sub");
    let token = sys.key.mint(&claims);
    let (status, _, body) = sys
        .get(
            "/",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-jwt-sub", "admin"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert!(seen(&echo, "x-jwt-sub").is_empty(), "{echo:#}");
    assert_eq!(seen(&echo, "x-jwt-iss"), [sys.issuer.issuer.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_forwards_method_and_uri_so_route_rules_apply() {
    let sys = System::start_with("rules", |c| {
        c.rules = serde_norway::from_str(
            "- match: {path: {prefix: /public}}\n  action: anonymous\n\
             - match: {methods: [DELETE]}\n  action: deny\n",
        )
        .expect("rules parse");
    })
    .await;
    let (status, _, body) = sys.get("/public/page?x=1", &[]).await;
    assert_eq!(status, 200, "anonymous route, no token: {body}");
    let bearer = format!("Bearer {}", sys.token("alice"));
    let (status, _, _) = sys
        .send(
            reqwest::Method::DELETE,
            "/orders/7",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        status, 403,
        "DELETE is denied by rule even with a valid token"
    );
    let (status, _, _) = sys.get("/orders/7", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert_eq!(sys.app.hits(), 2);
}
