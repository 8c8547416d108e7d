//! End-to-end token handling (issue #4's "through Envoy" list): a real Envoy with the ext_authz
//! gRPC filter in front of an echo upstream, asking `jwt-authz serve`. Besides the real OpenID
//! Provider (node-oidc-provider), jwt-authz trusts a second issuer: a real HTTP issuer on
//! 127.0.0.1:0 whose keys are minted here, so that tokens of any shape can be signed — the
//! `typ` variants, ID tokens, `scp` claims and claims for the matchers that node-oidc-provider
//! does not issue by client_credentials. Every request goes through Envoy; the assertions are on
//! what the client and the upstream see.
//!
//! Needs Envoy and oidc-provider, like tests/e2e_envoy.rs: run `scripts/setup-e2e` once.

mod support;

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/ports.rs"]
mod ports;

use std::time::Duration;

use e2e::{within, E2e, Reply, Setup, API_AUDIENCE};
use jwt_authz::dev::SigningKey;
use serde_json::{json, Value};
use support::{now, Alg, TestIssuer};

const TEST_LIMIT: Duration = Duration::from_secs(60);

/// What a case sends: a name, the path and query, and extra request headers.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

/// Every token source, scope rules reading both claim shapes, and the four claim matchers.
const POLICY: &str = r#"token_sources:
  - type: authorization
  - type: header
    name: X-Access-Token
    prefix: "Token "
  - type: cookie
    name: access_token
  - type: query
    name: access_token
upstream_headers:
  remove_authorization: true
rules:
  - name: reports-export
    match: {path: {prefix: /reports/export}}
    scopes: {all_of: ["reports:read", "reports:export"]}
  - name: reports
    match: {path: {prefix: /reports}}
    scopes: {any_of: ["reports:read", "admin"]}
  - name: admin
    match: {path: {prefix: /admin}}
    claims:
      - {pointer: /groups, contains: admins}
      - {pointer: /email_verified, equals: true}
  - name: tenants
    match: {path: {prefix: /tenants}}
    claims:
      - {pointer: /tenant, one_of: [acme, globex]}
      - {pointer: /act, exists: false}
"#;

/// The running system plus the minted-key issuer and its signing key.
struct Sys {
    e2e: E2e,
    minted: TestIssuer,
    key: SigningKey,
}

async fn start(name: &str) -> Sys {
    let key = SigningKey::generate(Alg::RS256, Some("minted-1"));
    let minted = TestIssuer::start(&[&key]).await;
    let extra = format!(
        "  - issuer: {}\n    audiences: [\"{API_AUDIENCE}\"]\n    leeway: 0s\n",
        minted.issuer
    );
    let setup = Setup {
        authz_policy: POLICY.to_owned(),
        envoy_template: include_str!("e2e/envoy.yaml.tmpl"),
    };
    let e2e = E2e::start_with_issuers(name, setup, &extra).await;
    Sys { e2e, minted, key }
}

impl Sys {
    /// RFC 9068 claims from the minted issuer, with `extra` merged in.
    fn claims(&self, extra: Value) -> Value {
        let now = now();
        let mut c = json!({
            "iss": self.minted.issuer,
            "aud": API_AUDIENCE,
            "sub": "user-42",
            "client_id": "e2e-minted",
            "iat": now,
            "exp": now + 300,
            "jti": format!("{:032x}", rand::random::<u128>()),
        });
        for (k, v) in extra.as_object().expect("extra claims are an object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    /// A token signed by the minted issuer's key with header `typ` (none when `None`).
    fn token_typ(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = json!({ "alg": "RS256", "kid": "minted-1" });
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        self.key
            .sign_parts(&header.to_string(), &claims.to_string())
    }

    /// An RFC 9068 access token with these extra claims.
    fn token(&self, extra: Value) -> String {
        self.token_typ(Some("at+jwt"), &self.claims(extra))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.e2e.get(path, token, &[]).await
    }
}

#[track_caller]
fn assert_invalid_token(reply: &Reply, because: &str, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {reply:#?}");
    let challenge = reply.challenge();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains(because),
        "{what}: the challenge should be invalid_token saying {because:?}: {challenge}"
    );
}

#[track_caller]
fn assert_invalid_request(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {reply:#?}");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{what}: RFC 6750 §3.1 invalid_request: {challenge}"
    );
    assert_eq!(reply.json_error().as_deref(), Some("invalid_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_source_works_through_envoy_and_the_token_never_reaches_the_upstream() {
    let sys = start("tokens_sources").await;
    within(TEST_LIMIT, "the token source steps", async {
        let op = sys.e2e.token(API_AUDIENCE).await;
        let sub = op.claim("sub").to_owned();
        let tok = op.raw.as_str();
        let header_value = format!("Token {tok}");
        let cookie_value = format!("theme=dark; access_token={tok}; lang=en");
        let cases: [Case; 3] = [
            (
                "custom header",
                "/hello".into(),
                vec![("x-access-token", header_value.as_str())],
            ),
            (
                "cookie",
                "/hello".into(),
                vec![("cookie", cookie_value.as_str())],
            ),
            (
                "query",
                format!("/hello?a=1&access_token={tok}&b=2"),
                vec![],
            ),
        ];
        for (what, path, headers) in &cases {
            let reply = sys.e2e.get(path, None, headers).await;
            let seen = reply.echo();
            assert_eq!(seen.one("x-jwt-sub"), sub, "{what}");
            assert!(
                !seen.headers.contains_key("authorization"),
                "{what}: remove_authorization"
            );
            if *what == "query" {
                // Envoy applies CheckResponse.ok_response.query_parameters_to_remove.
                assert_eq!(seen.path, "/hello?a=1&b=2", "the query token is removed");
            }
        }
        // The custom header's prefix is required: the header without it is a malformed request.
        let bare = sys
            .e2e
            .get("/hello", None, &[("x-access-token", tok)])
            .await;
        assert_invalid_request(&bare, "the custom header without its prefix");

        // Two tokens, in two sources or twice in one, are refused rather than guessed between.
        let two_sources = sys
            .e2e
            .get(&format!("/hello?access_token={tok}"), Some(tok), &[])
            .await;
        assert_invalid_request(&two_sources, "Authorization and query");
        let two_cookies = format!("access_token={tok}; access_token={tok}");
        let twice = sys
            .e2e
            .get("/hello", None, &[("cookie", two_cookies.as_str())])
            .await;
        assert_invalid_request(&twice, "the cookie twice");
        assert_eq!(
            sys.e2e.upstream_hits(),
            3,
            "only the three allowed requests"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_headers_answer_400_through_envoy() {
    let sys = start("tokens_malformed").await;
    within(TEST_LIMIT, "the malformed header steps", async {
        let op = sys.e2e.token(API_AUDIENCE).await;
        let tok = op.raw.as_str();
        // RFC 6750 §2.1: the scheme is case-insensitive and may be followed by several spaces.
        for value in [format!("bearer {tok}"), format!("BEARER   {tok}")] {
            let reply = sys.e2e.get("/x", None, &[("authorization", &value)]).await;
            assert_eq!(reply.status, 200, "{value:.12}…: {reply:#?}");
        }
        for (what, value) in [
            ("text after the token", format!("Bearer {tok} extra")),
            ("two tokens", format!("Bearer {tok} {tok}")),
            ("not token68", "Bearer abc$def".to_owned()),
            ("scheme without a token", "Bearer".to_owned()),
        ] {
            let reply = sys.e2e.get("/x", None, &[("authorization", &value)]).await;
            assert_invalid_request(&reply, what);
        }
        // Another scheme is no bearer token at all: the bare challenge (RFC 6750 §3.1).
        let basic = sys
            .e2e
            .get("/x", None, &[("authorization", "Basic ZTJlOnNlY3JldA==")])
            .await;
        assert_eq!(basic.challenge(), "Bearer realm=\"jwt-authz\"");
        assert_eq!(sys.e2e.upstream_hits(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typ_variants_and_id_tokens_are_decided_by_the_rfc_9068_profile() {
    let sys = start("tokens_typ").await;
    within(TEST_LIMIT, "the typ steps", async {
        let claims = sys.claims(json!({}));
        // RFC 9068 §2.1 / §4: at+jwt or application/at+jwt, compared case-insensitively.
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            let reply = sys
                .get("/x", Some(&sys.token_typ(Some(typ), &claims)))
                .await;
            assert_eq!(reply.echo().one("x-jwt-sub"), "user-42", "typ {typ}");
        }
        for typ in [Some("JWT"), None] {
            let reply = sys.get("/x", Some(&sys.token_typ(typ, &claims))).await;
            assert_invalid_token(&reply, "profile", &format!("typ {typ:?}"));
        }
        // An ID token replayed as an access token: OIDC Core claims such as nonce/at_hash, even
        // with an accepted audience and typ (RFC 8725 §2.8).
        let id_token = sys.token(json!({ "nonce": "n-0S6_WzA2Mj", "auth_time": now() }));
        let reply = sys.get("/x", Some(&id_token)).await;
        assert_invalid_token(&reply, "ID token", "an ID token");
        // A required RFC 9068 claim missing.
        let no_jti = sys.token(json!({ "jti": null }));
        assert_invalid_token(&sys.get("/x", Some(&no_jti)).await, "jti", "no jti");
        assert_eq!(sys.e2e.upstream_hits(), 4);
        assert_eq!(sys.e2e.denials("id_token").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_read_from_scope_and_scp_in_both_shapes() {
    let sys = start("tokens_scopes").await;
    within(TEST_LIMIT, "the scope steps", async {
        let both = [
            (
                "scope string",
                json!({ "scope": "reports:read reports:export" }),
            ),
            (
                "scp string",
                json!({ "scp": "reports:read reports:export" }),
            ),
            (
                "scp array",
                json!({ "scp": ["reports:read", "reports:export"] }),
            ),
            (
                "scope + scp",
                json!({ "scope": "reports:read", "scp": ["reports:export"] }),
            ),
        ];
        for (what, extra) in both {
            let reply = sys.get("/reports/export/7", Some(&sys.token(extra))).await;
            assert_eq!(reply.status, 200, "all_of from {what}: {reply:#?}");
        }
        let one = [
            ("scope string", json!({ "scope": "reports:read" })),
            ("scp array", json!({ "scp": ["reports:read"] })),
        ];
        for (what, extra) in one {
            let token = sys.token(extra);
            assert_eq!(
                sys.get("/reports/7", Some(&token)).await.status,
                200,
                "any_of from {what}"
            );
            let reply = sys.get("/reports/export/7", Some(&token)).await;
            assert_eq!(reply.status, 403, "all_of misses one ({what}): {reply:#?}");
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.contains("error=\"insufficient_scope\"")
                    && challenge.contains("scope=\"reports:read reports:export\""),
                "RFC 6750 §3.1 names the rule's scopes: {challenge}"
            );
        }
        let none = sys.token(json!({ "scp": ["profile"] }));
        assert_eq!(sys.get("/reports/1", Some(&none)).await.status, 403);
        assert_eq!(sys.e2e.denials("insufficient_scope").await, 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_matchers_decide_through_envoy() {
    let sys = start("tokens_claims").await;
    within(TEST_LIMIT, "the claim matcher steps", async {
        let admin = json!({ "groups": ["staff", "admins"], "email_verified": true });
        assert_eq!(sys.get("/admin", Some(&sys.token(admin))).await.status, 200);
        for (what, extra) in [
            (
                "contains fails",
                json!({ "groups": ["staff"], "email_verified": true }),
            ),
            (
                "equals is typed",
                json!({ "groups": ["admins"], "email_verified": "true" }),
            ),
            ("claim absent", json!({ "email_verified": true })),
        ] {
            let reply = sys.get("/admin/users", Some(&sys.token(extra))).await;
            assert_eq!(reply.status, 403, "{what}: {reply:#?}");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"jwt-authz\""),
                "a failed claim condition is 403 without insufficient_scope"
            );
        }
        assert_eq!(
            sys.get(
                "/tenants/1",
                Some(&sys.token(json!({ "tenant": "globex" })))
            )
            .await
            .status,
            200,
            "one_of + exists: false"
        );
        for (what, extra) in [
            ("one_of fails", json!({ "tenant": "initech" })),
            (
                "exists: false fails",
                json!({ "tenant": "acme", "act": { "sub": "svc" } }),
            ),
        ] {
            let reply = sys.get("/tenants/1", Some(&sys.token(extra))).await;
            assert_eq!(reply.status, 403, "{what}: {reply:#?}");
        }
        assert_eq!(sys.e2e.denials("forbidden").await, 5);
        assert_eq!(sys.e2e.upstream_hits(), 2);
    })
    .await;
}
