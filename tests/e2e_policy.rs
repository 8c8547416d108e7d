//! End-to-end policy (issue #4): a real Envoy in front of an echo upstream asks `jwt-authz serve`,
//! which trusts a real OpenID Provider (node-oidc-provider granting `read`, `write` or both). The
//! requests go through Envoy and cover: a route rule requiring a scope (403 with `scope=` in the
//! challenge), an anonymous route, claim headers the upstream receives (spoofed copies replaced),
//! dynamic metadata consumed by Envoy (route headers, the access log, RBAC), the RFC 9728 document
//! answered in-band, and hot reload of jwt-authz's config file.
//!
//! Needs Envoy and oidc-provider, like tests/e2e_envoy.rs: run `scripts/setup-e2e` once.

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/ports.rs"]
mod ports;

use std::time::Duration;

use e2e::{within, E2e, Setup, API_AUDIENCE};
use serde_json::{json, Value};

/// Upper bound for one test's steps after startup (see tests/e2e_envoy.rs).
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// jwt-authz's rules; `{EXTRA}` is where a reload inserts a rule (first match wins).
const RULES: &str = "rules:
{EXTRA}  - name: health
    match: {path: {exact: /healthz}}
    action: anonymous
  - name: orders-write
    match: {methods: [POST, PUT, DELETE], path: {prefix: /orders}}
    scopes: {all_of: [write]}
  - name: orders
    match: {path: {prefix: /orders}}
    scopes: {any_of: [read, write]}
";

/// Everything else in jwt-authz's policy.
const SHAPING: &str = "upstream_headers:
  claims:
    - {claim: client_id, header: x-jwt-client}
    - {claim: scope, header: x-jwt-scope}
  remove_authorization: true
protected_resource:
  resource: https://api.jwt-authz.test
  resource_name: jwt-authz end-to-end
";

/// The jwt-authz policy with `extra_rules` placed before the others.
fn policy(extra_rules: &str) -> String {
    format!("{}{SHAPING}", RULES.replace("{EXTRA}", extra_rules))
}

const RESOURCE_METADATA: &str = "https://api.jwt-authz.test/.well-known/oauth-protected-resource";

async fn start(name: &str) -> E2e {
    E2e::start_with(
        name,
        Setup {
            authz_policy: policy(""),
            envoy_template: include_str!("e2e/envoy-policy.yaml.tmpl"),
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_rule_answers_403_naming_the_scope_and_admits_the_right_token() {
    let sys = start("policy_scope").await;
    within(TEST_LIMIT, "the scope steps", async {
        let read = sys.token_with_scope(API_AUDIENCE, "read").await;
        let write = sys.token_with_scope(API_AUDIENCE, "write").await;
        assert_eq!(read.claim("scope"), "read");
        assert_eq!(write.claim("scope"), "write");

        let reply = sys.send("POST", "/orders", Some(&read.raw), &[]).await;

        assert_eq!(reply.status, 403, "read-only token on POST: {reply:#?}");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"jwt-authz\", error=\"insufficient_scope\""),
            "RFC 6750 §3.1 insufficient_scope: {challenge}"
        );
        assert!(
            challenge.contains("scope=\"write\""),
            "names the scope: {challenge}"
        );
        assert!(
            challenge.contains(&format!("resource_metadata=\"{RESOURCE_METADATA}\"")),
            "RFC 9728 §5.1: {challenge}"
        );
        assert_eq!(reply.json_error().as_deref(), Some("insufficient_scope"));
        assert_eq!(
            sys.upstream_hits(),
            0,
            "a denied request reached the upstream"
        );

        assert_eq!(
            sys.send("POST", "/orders", Some(&write.raw), &[])
                .await
                .status,
            200
        );
        assert_eq!(
            sys.get("/orders/7", Some(&read.raw), &[]).await.status,
            200,
            "read is enough for GET"
        );
        assert_eq!(sys.denials("insufficient_scope").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_route_needs_no_token_and_strips_identity_headers() {
    let sys = start("policy_anonymous").await;
    within(TEST_LIMIT, "the anonymous steps", async {
        let spoofed = [
            ("x-jwt-sub", "spoofed"),
            ("x-jwt-client", "spoofed"),
            ("x-authz-subject", "spoofed"),
        ];

        let reply = sys.get("/healthz", None, &spoofed).await;

        let seen = reply.echo();
        for (name, _) in spoofed {
            assert!(
                !seen.headers.contains_key(name),
                "{name} reached the upstream of an anonymous route: {seen:#?}"
            );
        }
        // The same request elsewhere needs a token.
        assert_eq!(sys.get("/orders", None, &spoofed).await.status, 401);
        assert_eq!(sys.upstream_hits(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_receives_claim_headers_never_a_spoofed_copy() {
    let sys = start("policy_headers").await;
    within(TEST_LIMIT, "the claim header steps", async {
        let token = sys.token_with_scope(API_AUDIENCE, "read").await;

        let reply = sys
            .get(
                "/orders",
                Some(&token.raw),
                &[
                    ("x-jwt-client", "evil-client"),
                    ("x-jwt-scope", "admin"),
                    ("x-jwt-sub", "root"),
                ],
            )
            .await;

        // `one` also fails if the client's copy survived next to jwt-authz's.
        let seen = reply.echo();
        assert_eq!(seen.one("x-jwt-client"), token.claim("client_id"));
        assert_eq!(seen.one("x-jwt-scope"), "read");
        assert_eq!(seen.one("x-jwt-sub"), token.claim("sub"));
        assert_eq!(seen.one("x-jwt-iss"), sys.issuer);
        assert!(
            !seen.headers.contains_key("authorization"),
            "remove_authorization: the token is not forwarded: {seen:#?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_metadata_reaches_envoy_route_headers_and_access_log() {
    let sys = start("policy_metadata").await;
    within(TEST_LIMIT, "the metadata steps", async {
        let token = sys.token_with_scope(API_AUDIENCE, "read").await;

        let reply = sys
            .get(
                "/orders/42",
                Some(&token.raw),
                &[("x-authz-subject", "spoofed")],
            )
            .await;

        // request_headers_to_add with %DYNAMIC_METADATA(envoy.filters.http.ext_authz:jwt_authz:…)%
        let seen = reply.echo();
        assert_eq!(seen.one("x-authz-route"), "orders");
        assert_eq!(seen.one("x-authz-subject"), token.claim("sub"));
        let scopes: Value =
            serde_json::from_str(seen.one("x-authz-scopes")).expect("a list renders as JSON");
        assert_eq!(scopes, json!(["read"]));

        // The access-log format reads the same namespace, including a claim.
        let want = format!(
            "GET /orders/42 200 route=orders sub={} client={}",
            token.claim("sub"),
            token.claim("client_id")
        );
        let mut log = String::new();
        for _ in 0..50 {
            log = sys.access_log();
            if log.contains(&want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            log.contains(&want),
            "access log should hold {want:?}:\n{log}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_rbac_decides_on_scopes_from_metadata() {
    let sys = start("policy_rbac").await;
    within(TEST_LIMIT, "the RBAC steps", async {
        let read = sys.token_with_scope(API_AUDIENCE, "read").await;
        let write = sys.token_with_scope(API_AUDIENCE, "write").await;

        // jwt-authz allows both (no rule for /ops); Envoy RBAC wants `write` in jwt_authz.scopes.
        let reply = sys.get("/ops/restart", Some(&read.raw), &[]).await;

        assert_eq!(reply.status, 403, "RBAC denies: {reply:#?}");
        assert!(reply.body.contains("RBAC"), "denied by RBAC: {reply:#?}");
        assert_eq!(sys.upstream_hits(), 0);
        assert_eq!(
            sys.get("/ops/restart", Some(&write.raw), &[]).await.status,
            200
        );
        assert_eq!(sys.upstream_hits(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_is_served_through_envoy() {
    let sys = start("policy_rfc9728").await;
    within(TEST_LIMIT, "the RFC 9728 steps", async {
        let reply = sys
            .get("/.well-known/oauth-protected-resource", None, &[])
            .await;

        assert_eq!(reply.status, 200, "{reply:#?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let doc: Value = serde_json::from_str(&reply.body).expect("a JSON document");
        assert_eq!(doc["resource"], "https://api.jwt-authz.test");
        assert_eq!(doc["authorization_servers"], json!([sys.issuer]));
        assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["resource_name"], "jwt-authz end-to-end");
        assert_eq!(
            sys.upstream_hits(),
            0,
            "answered by jwt-authz, not the upstream"
        );

        // A client without a token learns where the document is from the challenge.
        let reply = sys.get("/orders", None, &[]).await;
        assert_eq!(
            reply.challenge(),
            format!("Bearer realm=\"jwt-authz\", resource_metadata=\"{RESOURCE_METADATA}\"")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_rule_envoy_traffic_follows_and_a_bad_file_changes_nothing() {
    let sys = start("policy_reload").await;
    within(TEST_LIMIT, "the reload steps", async {
        let token = sys.token_with_scope(API_AUDIENCE, "read write").await;
        assert_eq!(sys.get("/reports", Some(&token.raw), &[]).await.status, 200);

        sys.rewrite_authz_policy(&policy(
            "  - name: reports\n    match: {path: {prefix: /reports}}\n    scopes: {all_of: [admin]}\n",
        ));

        // The file is checked every second; the next requests follow the new rule.
        let mut reply = sys.get("/reports", Some(&token.raw), &[]).await;
        for _ in 0..50 {
            if reply.status == 403 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            reply = sys.get("/reports", Some(&token.raw), &[]).await;
        }
        assert_eq!(reply.status, 403, "the new rule applies: {reply:#?}");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("scope=\"admin\""), "{challenge}");

        // An invalid file is rejected and counted; the running rules stay in force.
        sys.rewrite_authz_policy(&policy(
            "  - name: broken\n    match: {path: {regex: '('}}\n",
        ));
        let mut metrics = String::new();
        for _ in 0..50 {
            metrics = sys.metrics().await;
            if metrics.contains("jwt_authz_config_reloads_total{outcome=\"rejected\"} 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            metrics.contains("jwt_authz_config_reloads_total{outcome=\"rejected\"} 1"),
            "the invalid file is rejected:\n{metrics}"
        );
        assert_eq!(sys.get("/reports", Some(&token.raw), &[]).await.status, 403);
        assert_eq!(sys.get("/orders", Some(&token.raw), &[]).await.status, 200);
    })
    .await;
}
