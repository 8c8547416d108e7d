//! Authorization policy and standard responses (issue #4) through the gRPC surface: token
//! sources, the RFC 9068 profile, route rules (scopes, claims, anonymous, issuers, audiences),
//! upstream headers and Envoy dynamic metadata, RFC 6750 / RFC 9728 challenges, hot reload.

mod support;

use std::time::Duration;

use jwt_authz::dev::SigningKey;
use serde_json::{json, Value};
use support::*;

const AUD: &str = "https://api.test";

struct Env {
    issuer: TestIssuer,
    key: SigningKey,
    app: Running,
    client: Checker,
    _dir: std::path::PathBuf,
    config_path: std::path::PathBuf,
}

/// jwt-authz from a YAML config (with hot reload) against a test issuer; `{ISSUER}` is replaced.
async fn env(yaml: &str) -> Env {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let dir = std::env::temp_dir().join(format!("jwt-authz-policy-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, render(yaml, &issuer)).unwrap();
    let app = Running::start_file(&config_path).await;
    app.wait_ready().await;
    let client = app.client().await;
    Env {
        issuer,
        key,
        app,
        client,
        _dir: dir,
        config_path,
    }
}

fn render(yaml: &str, issuer: &TestIssuer) -> String {
    format!(
        "listen: {{grpc: 127.0.0.1:0, admin: 127.0.0.1:0}}\n{}",
        yaml.replace("{ISSUER}", &issuer.issuer)
    )
}

const BASE: &str =
    "issuers:\n- issuer: {ISSUER}\n  audiences: [https://api.test]\n  unknown_kid_cooldown: 0s\n";

impl Env {
    fn token(&self, patch: Value) -> String {
        let mut c = self.issuer.claims(AUD, "alice");
        merge(&mut c, patch);
        self.key.mint(&c)
    }
    fn token_with_header(&self, header: Value, patch: Value) -> String {
        let mut c = self.issuer.claims(AUD, "alice");
        merge(&mut c, patch);
        self.key.sign_parts(&header.to_string(), &c.to_string())
    }
}

fn merge(c: &mut Value, patch: Value) {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
}

// === token sources ===

#[tokio::test]
async fn token_from_each_configured_source() {
    let e = env(&format!(
        "{BASE}token_sources:\n- type: authorization\n- type: header\n  name: X-Access-Token\n  prefix: 'Token '\n- type: cookie\n  name: at\n- type: query\n"
    ))
    .await;
    let t = e.token(json!({}));
    assert!(e
        .client
        .request("GET", "/", &[("authorization", &format!("Bearer {t}"))])
        .await
        .allowed());
    assert!(e
        .client
        .request("GET", "/", &[("x-access-token", &format!("Token {t}"))])
        .await
        .allowed());
    assert!(e
        .client
        .request("GET", "/", &[("cookie", &format!("theme=dark; at={t}"))])
        .await
        .allowed());
    let o = e
        .client
        .request("GET", &format!("/p?x=1&access_token={t}"), &[])
        .await;
    assert!(o.allowed(), "{o:?}");
    assert_eq!(
        o.remove_query,
        ["access_token"],
        "the token is not forwarded in the URL"
    );
    let o = e
        .client
        .request(
            "GET",
            &format!("/p?access_token={t}"),
            &[("authorization", &format!("Bearer {t}"))],
        )
        .await;
    assert_eq!(o.http_status, 400, "two tokens → invalid_request: {o:?}");
    assert!(o.www_authenticate().contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn only_configured_sources_are_read() {
    let e = env(BASE).await;
    let t = e.token(json!({}));
    let o = e
        .client
        .request("GET", &format!("/p?access_token={t}"), &[])
        .await;
    assert_eq!(o.http_status, 401);
    assert_eq!(o.www_authenticate(), "Bearer realm=\"jwt-authz\"");
}

#[tokio::test]
async fn malformed_authorization_headers_are_400() {
    let e = env(BASE).await;
    let t = e.token(json!({}));
    for bad in [
        format!("Bearer {t} extra"),
        format!("Bearer {t},x"),
        "Bearer".into(),
        "Bearer ".into(),
    ] {
        let o = e.client.headers(&[("authorization", &bad)]).await;
        assert_eq!(o.http_status, 400, "{bad:?}: {o:?}");
    }
    for ok in [format!("bearer {t}"), format!("BEARER   {t}")] {
        assert!(
            e.client.headers(&[("authorization", &ok)]).await.allowed(),
            "{ok:?}"
        );
    }
}

// === RFC 9068 profile ===

#[tokio::test]
async fn typ_variants_under_the_rfc9068_profile() {
    let e = env(BASE).await;
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        let t = e.token_with_header(json!({"alg": "ES256", "kid": "k1", "typ": typ}), json!({}));
        assert!(e.client.bearer(&t).await.allowed(), "{typ}");
    }
    let t = e.token_with_header(
        json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        json!({}),
    );
    let o = e.client.bearer(&t).await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("set profile: legacy"), "{o:?}");
}

#[tokio::test]
async fn id_token_replayed_as_access_token_is_denied() {
    let e = env(&BASE.replace(
        "unknown_kid_cooldown: 0s",
        "unknown_kid_cooldown: 0s\n  profile: legacy",
    ))
    .await;
    let t = e.token_with_header(
        json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        json!({"nonce": "n-0S6_WzA2Mj", "aud": AUD}),
    );
    let o = e.client.bearer(&t).await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("ID token"), "{o:?}");
    // The same token without ID-token claims passes under the legacy profile.
    let t = e.token_with_header(
        json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        json!({"client_id": null}),
    );
    assert!(e.client.bearer(&t).await.allowed());
}

#[tokio::test]
async fn rfc9068_claims_are_required() {
    let e = env(BASE).await;
    let o = e.client.bearer(&e.token(json!({"client_id": null}))).await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("client_id"), "{o:?}");
}

// === route rules ===

const RULES: &str = "rules:
- name: health
  match: {path: {exact: /healthz}}
  action: anonymous
- name: blocked
  match: {path: {prefix: /internal}}
  action: deny
- name: write
  match: {methods: [POST], path: {prefix: /orders}}
  scopes: {all_of: [orders:write]}
- name: read
  match: {path: {prefix: /orders}}
  scopes: {any_of: [orders:read, orders:write]}
- name: admin
  match: {path: {prefix: /admin}}
  claims: [{pointer: /realm_access/roles, contains: admin}, {pointer: /email_verified, equals: true}]
- name: tenant
  match: {path: {prefix: /tenant}}
  claims: [{pointer: /tid, one_of: [t1, t2]}, {pointer: /acr, exists: true}]
- name: partner
  match: {path: {prefix: /partner}}
  audiences: [https://partner.test]
";

#[tokio::test]
async fn anonymous_route_needs_no_token_and_strips_identity_headers() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let o = e
        .client
        .request("GET", "/healthz", &[("x-jwt-sub", "spoofed")])
        .await;
    assert!(o.allowed(), "{o:?}");
    assert!(
        o.remove.contains(&"x-jwt-sub".to_owned()) && o.remove.contains(&"x-jwt-iss".to_owned())
    );
    assert!(o.headers.is_empty());
}

#[tokio::test]
async fn deny_rule_is_403() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let o = e
        .client
        .request(
            "GET",
            "/internal/x",
            &[("authorization", &format!("Bearer {}", e.token(json!({}))))],
        )
        .await;
    assert_eq!(o.http_status, 403);
}

#[tokio::test]
async fn scopes_all_of_and_any_of_from_scope_and_scp() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let bearer = |t: String| format!("Bearer {t}");
    let read = e.token(json!({"scope": "orders:read"}));
    let write_scp = e.token(json!({"scope": null, "scp": ["orders:write"]}));
    let write_scp_str = e.token(json!({"scope": null, "scp": "profile orders:write"}));
    assert!(e
        .client
        .request(
            "GET",
            "/orders",
            &[("authorization", &bearer(read.clone()))]
        )
        .await
        .allowed());
    assert!(e
        .client
        .request(
            "GET",
            "/orders",
            &[("authorization", &bearer(write_scp.clone()))]
        )
        .await
        .allowed());
    assert!(e
        .client
        .request("POST", "/orders", &[("authorization", &bearer(write_scp))])
        .await
        .allowed());
    assert!(e
        .client
        .request(
            "POST",
            "/orders",
            &[("authorization", &bearer(write_scp_str))]
        )
        .await
        .allowed());
    let o = e
        .client
        .request("POST", "/orders", &[("authorization", &bearer(read))])
        .await;
    assert_eq!(o.http_status, 403);
    assert_eq!(o.rpc_code, 7);
    let ch = o.www_authenticate();
    assert!(ch.contains("error=\"insufficient_scope\""), "{ch}");
    assert!(ch.contains("scope=\"orders:write\""), "{ch}");
}

#[tokio::test]
async fn claim_conditions_gate_routes() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let h = |t: String| format!("Bearer {t}");
    let admin =
        e.token(json!({"realm_access": {"roles": ["user", "admin"]}, "email_verified": true}));
    let unverified =
        e.token(json!({"realm_access": {"roles": ["admin"]}, "email_verified": false}));
    let user = e.token(json!({"realm_access": {"roles": ["user"]}, "email_verified": true}));
    assert!(e
        .client
        .request("GET", "/admin", &[("authorization", &h(admin))])
        .await
        .allowed());
    assert_eq!(
        e.client
            .request("GET", "/admin", &[("authorization", &h(unverified))])
            .await
            .http_status,
        403
    );
    let o = e
        .client
        .request("GET", "/admin", &[("authorization", &h(user))])
        .await;
    assert_eq!(o.http_status, 403);
    assert!(o.description().contains("admin"), "names the rule: {o:?}");
    let t1 = e.token(json!({"tid": "t1", "acr": "1"}));
    let t3 = e.token(json!({"tid": "t3", "acr": "1"}));
    let no_acr = e.token(json!({"tid": "t2"}));
    assert!(e
        .client
        .request("GET", "/tenant", &[("authorization", &h(t1))])
        .await
        .allowed());
    assert_eq!(
        e.client
            .request("GET", "/tenant", &[("authorization", &h(t3))])
            .await
            .http_status,
        403
    );
    assert_eq!(
        e.client
            .request("GET", "/tenant", &[("authorization", &h(no_acr))])
            .await
            .http_status,
        403
    );
}

#[tokio::test]
async fn route_can_override_audiences() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let partner = e.token(json!({"aud": "https://partner.test"}));
    let normal = e.token(json!({}));
    let h = |t: &str| format!("Bearer {t}");
    assert!(e
        .client
        .request("GET", "/partner", &[("authorization", &h(&partner))])
        .await
        .allowed());
    assert_eq!(
        e.client
            .request("GET", "/partner", &[("authorization", &h(&normal))])
            .await
            .http_status,
        401
    );
    assert_eq!(
        e.client
            .request("GET", "/", &[("authorization", &h(&partner))])
            .await
            .http_status,
        401
    );
}

#[tokio::test]
async fn route_can_restrict_issuers() {
    let other_key = SigningKey::generate(Alg::ES256, Some("o1"));
    let other = TestIssuer::start(&[&other_key]).await;
    let yaml = format!(
        "{BASE}- issuer: {}\n  audiences: [https://api.test]\nrules:\n- name: only-first\n  match: {{path: {{prefix: /first}}}}\n  issuers: ['{{ISSUER}}']\n",
        other.issuer
    );
    let e = env(&yaml).await;
    let from_other = other_key.mint(&other.claims(AUD, "bob"));
    let h = format!("Bearer {from_other}");
    assert!(e
        .client
        .request("GET", "/", &[("authorization", &h)])
        .await
        .allowed());
    let o = e
        .client
        .request("GET", "/first", &[("authorization", &h)])
        .await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("not accepted on this route"));
}

// === upstream shaping ===

#[tokio::test]
async fn upstream_headers_claims_payload_and_spoofing() {
    let e = env(&format!(
        "{BASE}upstream_headers:\n  claims:\n  - {{claim: email, header: x-jwt-email}}\n  - {{claim: /realm_access/roles, header: x-jwt-roles}}\n  - {{claim: missing, header: x-jwt-missing}}\n  payload: x-jwt-payload\n  remove_authorization: true\n"
    ))
    .await;
    let t = e.token(json!({"email": "a@example.com", "realm_access": {"roles": ["a", "b"]}}));
    let o = e
        .client
        .headers(&[
            ("authorization", &format!("Bearer {t}")),
            ("x-jwt-email", "spoof@evil"),
            ("x-jwt-missing", "spoof"),
        ])
        .await;
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.headers["x-jwt-sub"], "alice");
    assert_eq!(
        o.headers["x-jwt-email"], "a@example.com",
        "set with overwrite: the client value is replaced"
    );
    assert_eq!(o.headers["x-jwt-roles"], "a,b");
    assert!(
        o.remove.contains(&"x-jwt-missing".to_owned()),
        "a client copy of a header we have no value for is removed"
    );
    assert!(o.remove.contains(&"authorization".to_owned()));
    let payload = jwt_authz::jwks::keyset::b64url_for_tests(&o.headers["x-jwt-payload"]);
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["email"], "a@example.com");
}

#[tokio::test]
async fn verified_claims_are_published_as_dynamic_metadata() {
    let e = env(&format!("{BASE}{RULES}")).await;
    let t = e.token(json!({"scope": "orders:read", "tid": "t9"}));
    let o = e
        .client
        .request(
            "GET",
            "/orders",
            &[("authorization", &format!("Bearer {t}"))],
        )
        .await;
    assert!(o.allowed());
    let m = &o.metadata["jwt_authz"];
    assert_eq!(m["route"], "read");
    assert_eq!(m["subject"], "alice");
    assert_eq!(m["issuer"], e.issuer.issuer.as_str());
    assert_eq!(m["scopes"], json!(["orders:read"]));
    assert_eq!(m["claims"]["tid"], "t9");
}

// === RFC 9728 ===

#[tokio::test]
async fn protected_resource_metadata_is_served_and_advertised() {
    let e = env(&format!(
        "{BASE}{RULES}protected_resource:\n  resource: https://api.test/v1\n  resource_name: Test API\n"
    ))
    .await;
    let o = e
        .client
        .request("GET", "/.well-known/oauth-protected-resource/v1", &[])
        .await;
    assert_eq!(o.http_status, 200, "{o:?}");
    assert_ne!(
        o.rpc_code, 0,
        "answered by jwt-authz, not forwarded upstream"
    );
    let doc: Value = serde_json::from_str(&o.body).unwrap();
    assert_eq!(doc["resource"], "https://api.test/v1");
    assert_eq!(doc["authorization_servers"], json!([e.issuer.issuer]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["orders:read", "orders:write"])
    );
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    let o = e.client.request("GET", "/orders", &[]).await;
    assert_eq!(
        o.www_authenticate(),
        "Bearer realm=\"jwt-authz\", resource_metadata=\"https://api.test/.well-known/oauth-protected-resource/v1\""
    );
}

// === hot reload ===

#[tokio::test]
async fn reload_adds_a_rule_and_an_invalid_reload_is_rejected_while_traffic_continues() {
    let e = env(BASE).await;
    let t = e.token(json!({"scope": "read"}));
    let h = format!("Bearer {t}");
    assert!(e
        .client
        .request("GET", "/admin", &[("authorization", &h)])
        .await
        .allowed());

    let with_rule = format!("{BASE}rules:\n- name: admin\n  match: {{path: {{prefix: /admin}}}}\n  scopes: {{all_of: [admin]}}\n");
    std::fs::write(&e.config_path, render(&with_rule, &e.issuer)).unwrap();
    let mut applied = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if e.client
            .request("GET", "/admin", &[("authorization", &h)])
            .await
            .http_status
            == 403
        {
            applied = true;
            break;
        }
    }
    assert!(applied, "the new rule applies without a restart");
    let jwks_before = e.issuer.jwks_requests();

    // Traffic keeps flowing while an invalid file is written.
    let client = e.client.clone();
    let h2 = h.clone();
    let traffic = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(
                client
                    .request("GET", "/", &[("authorization", &h2)])
                    .await
                    .http_status,
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses
    });
    std::fs::write(
        &e.config_path,
        render(
            &format!("{BASE}rules:\n- match: {{path: {{regex: '('}}}}\n"),
            &e.issuer,
        ),
    )
    .unwrap();
    let statuses = traffic.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        e.client
            .request("GET", "/admin", &[("authorization", &h)])
            .await
            .http_status,
        403,
        "old rules kept"
    );
    let m = e.app.metrics().await;
    assert!(
        m.contains("jwt_authz_config_reloads_total{outcome=\"rejected\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("jwt_authz_config_reloads_total{outcome=\"ok\"} 2"),
        "{m}"
    );
    assert_eq!(
        e.issuer.jwks_requests(),
        jwks_before,
        "unchanged issuers keep their keys across reloads"
    );
}
