//! The verified-token cache (issue #8): hits skip signature verification but never policy, a
//! different token never hits another's entry, entries die with `exp` and with their key, and
//! the cache stays within its bounds under a flood of distinct valid tokens.

mod support;

use std::time::Duration;

use jwt_authz::{
    authz::{cache::CacheConfig, policy::RuleConfig},
    config::Config,
    dev::SigningKey,
};
use serde_json::json;
use support::*;

const AUD: &str = "https://api.test";

async fn start(issuer: &TestIssuer, cache: CacheConfig, rules: &str) -> (Running, Checker) {
    let mut config = Config::default();
    config.listen.grpc = "127.0.0.1:0".parse().unwrap();
    config.listen.admin = "127.0.0.1:0".parse().unwrap();
    let mut c = issuer_config(&issuer.issuer, AUD);
    c.leeway = Duration::ZERO;
    config.issuers = vec![c];
    config.token_cache = cache;
    config.rules = serde_norway::from_str::<Vec<RuleConfig>>(rules).unwrap();
    let app = Running::start_config(config).await;
    app.wait_ready().await;
    let client = app.client().await;
    (app, client)
}

fn count(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn repeated_token_is_a_cache_hit_and_policy_still_applies() {
    let key = SigningKey::generate(Alg::RS256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let rules = "- match: {path: {prefix: /admin}}\n  scopes: {all_of: [admin]}\n";
    let (app, client) = start(&issuer, CacheConfig::default(), rules).await;
    let token = key.mint(&issuer.claims(AUD, "alice"));
    let h = format!("Bearer {token}");
    for _ in 0..3 {
        assert!(client
            .request("GET", "/a", &[("authorization", &h)])
            .await
            .allowed());
    }
    let o = client
        .request("GET", "/admin", &[("authorization", &h)])
        .await;
    assert_eq!(
        o.http_status, 403,
        "a cached token is still checked against each route"
    );
    let m = app.metrics().await;
    assert_eq!(
        count(&m, "jwt_authz_token_cache_lookups_total{result=\"miss\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        count(&m, "jwt_authz_token_cache_lookups_total{result=\"hit\"}"),
        3,
        "{m}"
    );
}

#[tokio::test]
async fn a_different_token_never_hits_another_tokens_entry() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let (_app, client) = start(&issuer, CacheConfig::default(), "[]").await;
    let token = key.mint(&issuer.claims(AUD, "alice"));
    assert!(client.bearer(&token).await.allowed());
    // Same header and payload, another signature; and same signature, another payload.
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged_sig = format!("{input}.{}", b64([7u8; 64]));
    assert_eq!(client.bearer(&forged_sig).await.http_status, 401);
    let (_, sig) = token.rsplit_once('.').unwrap();
    let other_payload = key.mint(&issuer.claims(AUD, "mallory"));
    let (other_input, _) = other_payload.rsplit_once('.').unwrap();
    let spliced = format!("{other_input}.{sig}");
    let o = client.bearer(&spliced).await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("signature is invalid"), "{o:?}");
}

#[tokio::test]
async fn cached_entry_does_not_outlive_exp() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let (_app, client) = start(&issuer, CacheConfig::default(), "[]").await;
    let mut claims = issuer.claims(AUD, "alice");
    claims["exp"] = json!(now() + 2);
    let token = key.mint(&claims);
    assert!(client.bearer(&token).await.allowed());
    assert!(
        client.bearer(&token).await.allowed(),
        "served from the cache"
    );
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let o = client.bearer(&token).await;
    assert_eq!(o.http_status, 401);
    assert!(o.description().contains("expired"), "{o:?}");
}

#[tokio::test]
async fn cached_entry_is_dropped_when_its_key_leaves_the_set() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let k2 = SigningKey::generate(Alg::ES256, Some("k2"));
    let issuer = TestIssuer::start(&[&k1]).await;
    let (_app, client) = start(&issuer, CacheConfig::default(), "[]").await;
    let by_k1 = k1.mint(&issuer.claims(AUD, "alice"));
    assert!(client.bearer(&by_k1).await.allowed());
    // The provider rotates k1 out; a k2 token makes jwt-authz refetch and install {k2}.
    issuer.set_keys(&[&k2]);
    assert!(client
        .bearer(&k2.mint(&issuer.claims(AUD, "bob")))
        .await
        .allowed());
    let o = client.bearer(&by_k1).await;
    assert_eq!(
        o.http_status, 401,
        "the cached k1 verification is no longer trusted: {o:?}"
    );
}

#[tokio::test]
async fn flood_of_distinct_valid_tokens_stays_within_the_bounds() {
    let key = SigningKey::generate(Alg::EdDSA, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let cache = CacheConfig {
        max_entries: 500,
        max_bytes: 10 << 20,
        max_ttl: Duration::from_secs(60),
    };
    let (app, client) = start(&issuer, cache, "[]").await;
    let tokens: Vec<String> = (0..3000)
        .map(|i| key.mint(&issuer.claims(AUD, &format!("user-{i}"))))
        .collect();
    for chunk in tokens.chunks(100) {
        let checks = chunk.iter().map(|t| {
            let client = client.clone();
            let t = t.clone();
            async move { client.bearer(&t).await }
        });
        for o in futures_util::future::join_all(checks).await {
            assert!(o.allowed());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = count(&app.metrics().await, "jwt_authz_token_cache_entries");
    assert!(
        entries <= 500,
        "at most max_entries are kept, saw {entries}"
    );
    assert!(entries > 0);
}

#[tokio::test]
async fn cache_can_be_disabled() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let cache = CacheConfig {
        max_entries: 0,
        ..CacheConfig::default()
    };
    let (app, client) = start(&issuer, cache, "[]").await;
    let token = key.mint(&issuer.claims(AUD, "alice"));
    assert!(client.bearer(&token).await.allowed());
    assert!(client.bearer(&token).await.allowed());
    let m = app.metrics().await;
    assert_eq!(
        count(&m, "jwt_authz_token_cache_lookups_total{result=\"hit\"}"),
        0
    );
    assert_eq!(
        count(&m, "jwt_authz_key_lookups_total{result=\"hit\"}"),
        2,
        "verified twice"
    );
}
