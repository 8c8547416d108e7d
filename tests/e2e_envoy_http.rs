//! End-to-end: a real Envoy whose ext_authz filter uses an `http_service` (HTTP service mode,
//! `path_prefix: /ext_authz`) pointed at `jwt-authz serve`'s forward-auth endpoint, in front of an
//! echo upstream; tokens come from a real OpenID Provider (node-oidc-provider, RFC 9068).
//! The same fixture as tests/e2e_envoy.rs, rendered from tests/e2e/envoy-http.yaml.tmpl.
//!
//! Needs Envoy and oidc-provider installed: run `scripts/setup-e2e` once. Without them the tests
//! fail (never skip).

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/ports.rs"]
mod ports;

use std::time::Duration;

use e2e::{within, E2e, Setup, API_AUDIENCE};

const TEST_LIMIT: Duration = Duration::from_secs(60);

/// `/public…` needs no token; `DELETE` is refused; the token is not passed to the app.
const POLICY: &str = "upstream_headers:\n  remove_authorization: true\n\
    rules:\n\
    - match: {path: {prefix: /public}}\n  action: anonymous\n\
    - match: {methods: [DELETE]}\n  action: deny\n";

async fn start(name: &str, policy: &str) -> E2e {
    let setup = Setup {
        authz_policy: policy.to_owned(),
        envoy_template: include_str!("e2e/envoy-http.yaml.tmpl"),
    };
    E2e::start_with(name, setup).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_valid_token_reaches_upstream_with_identity_headers() {
    let sys = start("http_valid", "").await;
    within(TEST_LIMIT, "the valid token steps", async {
        let token = sys.token(API_AUDIENCE).await;
        let reply = sys
            .get(
                "/hello?x=1",
                Some(&token.raw),
                &[
                    ("x-jwt-sub", "spoofed"),
                    ("x-jwt-iss", "https://evil.example"),
                ],
            )
            .await;
        let seen = reply.echo();
        assert_eq!(seen.one("x-jwt-sub"), token.claim("sub"));
        assert_eq!(seen.one("x-jwt-iss"), sys.issuer);
        assert_eq!(sys.upstream_hits(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_missing_token_gets_the_bare_challenge_and_json_body() {
    let sys = start("http_missing", "").await;
    within(TEST_LIMIT, "the missing token steps", async {
        let reply = sys.get("/", None, &[]).await;
        assert_eq!(reply.challenge(), r#"Bearer realm="jwt-authz""#);
        assert_eq!(reply.json_error().as_deref(), Some("unauthorized"));
        assert_eq!(sys.upstream_hits(), 0);
        assert_eq!(sys.denials("missing_token").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_tampered_token_is_invalid_token() {
    let sys = start("http_tampered", "").await;
    within(TEST_LIMIT, "the tampered steps", async {
        let token = sys.token(API_AUDIENCE).await;
        let reply = sys.get("/", Some(&token.tampered()), &[]).await;
        assert!(
            reply.challenge().contains(r#"error="invalid_token""#),
            "{reply:#?}"
        );
        assert_eq!(reply.json_error().as_deref(), Some("invalid_token"));
        assert_eq!(sys.upstream_hits(), 0);
        assert_eq!(sys.denials("bad_signature").await, 1);
    })
    .await;
}

/// The path Envoy sends is `/ext_authz` + the original; rules see the original path and method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_rules_see_the_original_path_and_method() {
    let sys = start("http_rules", POLICY).await;
    within(TEST_LIMIT, "the route rule steps", async {
        let public = sys.get("/public/page", None, &[]).await;
        assert_eq!(public.status, 200, "anonymous route: {public:#?}");
        let private = sys.get("/private", None, &[]).await;
        private.challenge();

        let token = sys.token(API_AUDIENCE).await;
        let deleted = sys.send("DELETE", "/orders/7", Some(&token.raw), &[]).await;
        assert_eq!(
            deleted.status, 403,
            "DELETE is denied by rule: {deleted:#?}"
        );
        assert_eq!(sys.upstream_hits(), 1);
    })
    .await;
}

/// `remove_authorization`: jwt-authz answers `x-envoy-auth-headers-to-remove: authorization` and
/// Envoy drops the token before the request reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_headers_to_remove_reach_envoy() {
    let sys = start("http_remove", POLICY).await;
    within(TEST_LIMIT, "the header removal steps", async {
        let token = sys.token(API_AUDIENCE).await;
        let seen = sys.get("/orders", Some(&token.raw), &[]).await.echo();
        assert!(
            !seen.headers.contains_key("authorization"),
            "the token reached the app: {seen:#?}"
        );
        assert_eq!(seen.one("x-jwt-sub"), token.claim("sub"));
    })
    .await;
}
