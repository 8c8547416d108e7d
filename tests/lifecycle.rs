//! Key lifecycle against a fault-injecting issuer (issue #3): rotation, removal, unknown-kid
//! floods, cold-start herds, outages, cache lifetimes, key selection, static and cached key sets,
//! several issuers. Request counts at the issuer are asserted exactly.

mod support;

use std::time::{Duration, Instant};

use jwt_authz::{config::IssuerConfig, dev::SigningKey};
use serde_json::json;
use support::*;

const AUD: &str = "https://api.test";

fn cfg(issuer: &TestIssuer) -> IssuerConfig {
    issuer_config(&issuer.issuer, AUD)
}

async fn ready_app(issuers: Vec<IssuerConfig>) -> (Running, Checker) {
    let app = Running::start(issuers).await;
    app.wait_ready().await;
    let client = app.client().await;
    (app, client)
}

#[tokio::test]
async fn rotation_adds_k2_with_one_refetch_and_removing_k1_stops_it_verifying() {
    let k1 = SigningKey::generate(Alg::RS256, Some("k1"));
    let k2 = SigningKey::generate(Alg::RS256, Some("k2"));
    let issuer = TestIssuer::start(&[&k1]).await;
    let (_app, client) = ready_app(vec![cfg(&issuer)]).await;
    assert_eq!(issuer.jwks_requests(), 1);

    issuer.set_keys(&[&k1, &k2]);
    assert!(client
        .bearer(&k2.mint(&issuer.claims(AUD, "a")))
        .await
        .allowed());
    assert_eq!(issuer.jwks_requests(), 2, "exactly one refetch for k2");

    // k1 removed at the provider; the next refresh (here triggered by an unknown kid) installs {k2}.
    issuer.set_keys(&[&k2]);
    let k3 = SigningKey::generate(Alg::RS256, Some("k3"));
    assert_eq!(
        client
            .bearer(&k3.mint(&issuer.claims(AUD, "a")))
            .await
            .http_status,
        401
    );
    assert_eq!(issuer.jwks_requests(), 3);
    let o = client.bearer(&k1.mint(&issuer.claims(AUD, "a"))).await;
    assert_eq!(
        o.http_status, 401,
        "a removed key no longer verifies: {o:?}"
    );
    assert!(o.description().contains("signing key is not known"));
    assert!(client
        .bearer(&k2.mint(&issuer.claims(AUD, "a")))
        .await
        .allowed());
}

#[tokio::test]
async fn random_kid_flood_refetches_at_most_once_per_cooldown_and_never_delays_known_keys() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    let mut c = cfg(&issuer);
    c.unknown_kid_cooldown = Duration::from_secs(60);
    c.max_wait = Duration::from_secs(5);
    let (app, client) = ready_app(vec![c]).await;
    assert_eq!(issuer.jwks_requests(), 1);
    // The one permitted refetch hangs for 3 s: known-kid checks must not wait for it.
    issuer.script(|s| s.jwks_delay = Duration::from_secs(3));

    let attacker = SigningKey::generate(Alg::ES256, None);
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..1000 {
        let mut header = json!({"alg": "ES256", "typ": "at+jwt"});
        header["kid"] = json!(format!("random-{i}-{}", rand::random::<u64>()));
        let token = attacker.sign_parts(&header.to_string(), &issuer.claims(AUD, "x").to_string());
        let c = client.clone();
        flood.push(tokio::spawn(async move { c.bearer(&token).await }));
        if i == 500 {
            // In the middle of the flood, with the refetch still in flight:
            tokio::time::sleep(Duration::from_millis(50)).await;
            let o = client.bearer(&k1.mint(&issuer.claims(AUD, "good"))).await;
            assert!(o.allowed(), "{o:?}");
            assert_eq!(
                issuer.jwks_answered(),
                1,
                "the refetch was still in flight: known keys did not wait for it"
            );
        }
    }
    let sent_in = started.elapsed();
    let mut denied = 0;
    for o in futures_util::future::join_all(flood).await {
        let o = o.unwrap();
        assert_eq!(o.http_status, 401);
        denied += 1;
    }
    assert_eq!(denied, 1000);
    assert_eq!(
        issuer.jwks_requests(),
        2,
        "one refetch for 1,000 random kids"
    );
    let m = app.metrics().await;
    let iss = &issuer.issuer;
    assert!(
        m.contains(&format!(
            r#"jwt_authz_jwks_unknown_kid_refetches_total{{issuer="{iss}",result="performed"}} 1"#
        )),
        "{m}"
    );
    eprintln!("flood: 1000 random-kid tokens sent in {sent_in:?}; JWKS GETs during flood: 1");
}

#[tokio::test]
async fn cold_start_herd_shares_one_discovery_and_one_jwks_request() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    issuer.script(|s| s.jwks_delay = Duration::from_secs(2));
    let app = Running::start(vec![cfg(&issuer)]).await;
    let client = app.client().await;
    let token = k1.mint(&issuer.claims(AUD, "herd"));
    let herd: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let token = token.clone();
            tokio::spawn(async move { client.bearer(&token).await })
        })
        .collect();
    for o in futures_util::future::join_all(herd).await {
        let o = o.unwrap();
        assert!(o.allowed(), "{o:?}");
    }
    assert_eq!(issuer.discovery_requests(), 1);
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn outage_at_start_fails_closed_then_recovers_within_seconds() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    issuer.script(|s| s.jwks_status = 500);
    let mut c = cfg(&issuer);
    c.max_wait = Duration::from_millis(200);
    let app = Running::start(vec![c]).await;
    let client = app.client().await;
    let token = k1.mint(&issuer.claims(AUD, "a"));
    for _ in 0..5 {
        let o = client.bearer(&token).await;
        assert_eq!(
            o.http_status, 503,
            "fail closed while the provider is down: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ready = reqwest::get(format!("http://{}/readyz", app.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("HTTP 500"));

    issuer.script(|s| s.jwks_status = 200);
    let back = Instant::now();
    app.wait_ready().await;
    let recovery = back.elapsed();
    assert!(client.bearer(&token).await.allowed());
    eprintln!("recovered {recovery:?} after the provider came back");
}

#[tokio::test]
async fn outage_later_serves_last_known_good_until_max_stale_then_503() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    let mut c = cfg(&issuer);
    c.refresh_interval = Duration::from_secs(1);
    c.min_refresh_interval = Duration::from_secs(1);
    c.max_stale = Duration::from_secs(3);
    let (_app, client) = ready_app(vec![c]).await;
    let token = k1.mint(&issuer.claims(AUD, "a"));
    issuer.script(|s| s.jwks_status = 503);
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        client.bearer(&token).await.allowed(),
        "last-known-good keys still serve"
    );
    assert!(
        issuer.jwks_requests() >= 2,
        "refreshes were attempted (and failed)"
    );
    tokio::time::sleep(
        Duration::from_secs(3).saturating_sub(down.elapsed()) + Duration::from_millis(800),
    )
    .await;
    let o = client.bearer(&token).await;
    assert_eq!(
        o.http_status, 503,
        "past max_stale the keys are no longer trusted: {o:?}"
    );
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    issuer.script(|s| s.cache_control = Some("public, max-age=1".into()));
    let mut c = cfg(&issuer);
    c.min_refresh_interval = Duration::from_secs(1);
    c.refresh_interval = Duration::from_secs(3600);
    let _app = ready_app(vec![c]).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let n = issuer.jwks_requests();
    assert!(
        (3..=5).contains(&n),
        "max-age=1 → a refresh about every second, saw {n} GETs in 3.5 s"
    );
}

#[tokio::test]
async fn cache_control_max_age_is_capped_by_refresh_interval() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    issuer.script(|s| s.cache_control = Some("max-age=86400".into()));
    let mut c = cfg(&issuer);
    c.min_refresh_interval = Duration::from_secs(1);
    c.refresh_interval = Duration::from_secs(1);
    c.max_stale = Duration::from_secs(60);
    let _app = ready_app(vec![c]).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let n = issuer.jwks_requests();
    assert!(
        (3..=5).contains(&n),
        "a day of max-age is capped at 1 s, saw {n} GETs in 3.5 s"
    );
}

#[tokio::test]
async fn long_max_age_means_no_refresh_before_it() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    issuer.script(|s| s.cache_control = Some("max-age=3600".into()));
    let mut c = cfg(&issuer);
    c.min_refresh_interval = Duration::from_secs(1);
    let _app = ready_app(vec![c]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn shared_kid_selects_the_entry_for_the_tokens_alg() {
    let rsa = SigningKey::generate(Alg::RS256, Some("shared"));
    let mut as_rs256 = rsa.public_jwk();
    let mut as_rs512 = rsa.public_jwk();
    as_rs256["alg"] = json!("RS256");
    as_rs512["alg"] = json!("RS512");
    let issuer = TestIssuer::start(&[]).await;
    issuer.set_raw_keys(vec![as_rs256, as_rs512]);
    let (_app, client) = ready_app(vec![cfg(&issuer)]).await;
    let claims = issuer.claims(AUD, "a");
    let rsa = rsa.with_alg(Alg::RS512);
    assert!(
        client.bearer(&rsa.mint(&claims)).await.allowed(),
        "RS512 entry chosen"
    );
    let rsa = rsa.with_alg(Alg::RS256);
    assert!(
        client.bearer(&rsa.mint(&claims)).await.allowed(),
        "RS256 entry chosen"
    );
    let rsa = rsa.with_alg(Alg::PS256);
    let o = client.bearer(&rsa.mint(&claims)).await;
    assert_eq!(
        o.http_status, 401,
        "a key tagged RS256/RS512 never verifies PS256"
    );
    assert!(o.description().contains("does not match its key"), "{o:?}");
}

#[tokio::test]
async fn kid_less_keys_and_tokens_work() {
    let a = SigningKey::generate(Alg::ES256, None);
    let b = SigningKey::generate(Alg::ES256, None);
    let issuer = TestIssuer::start(&[&a, &b]).await;
    let (_app, client) = ready_app(vec![cfg(&issuer)]).await;
    assert!(
        client
            .bearer(&b.mint(&issuer.claims(AUD, "a")))
            .await
            .allowed(),
        "tries each compatible key"
    );
    let with_kid = SigningKey::generate(Alg::ES256, Some("whatever"));
    assert_eq!(
        client
            .bearer(&with_kid.mint(&issuer.claims(AUD, "a")))
            .await
            .http_status,
        401
    );
}

#[tokio::test]
async fn static_jwks_file_needs_no_network() {
    let k1 = SigningKey::generate(Alg::EdDSA, Some("k1"));
    let dir = tempdir();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwt_authz::dev::jwks(&[&k1]).to_string()).unwrap();
    let mut c = IssuerConfig::new("https://offline.example", vec![AUD.into()]);
    c.jwks_file = Some(path);
    let (_app, client) = ready_app(vec![c]).await;
    let claims = access_token_claims("https://offline.example", AUD, "a", Duration::from_secs(60));
    assert!(client.bearer(&k1.mint(&claims)).await.allowed());
}

#[tokio::test]
async fn inline_jwks_works() {
    let k1 = SigningKey::generate(Alg::ES384, Some("k1"));
    let mut c = IssuerConfig::new("https://inline.example", vec![AUD.into()]);
    c.jwks_inline = Some(jwt_authz::dev::jwks(&[&k1]));
    let (_app, client) = ready_app(vec![c]).await;
    let claims = access_token_claims("https://inline.example", AUD, "a", Duration::from_secs(60));
    assert!(client.bearer(&k1.mint(&claims)).await.allowed());
}

#[tokio::test]
async fn two_issuers_one_down_the_other_unaffected() {
    let ka = SigningKey::generate(Alg::ES256, Some("a"));
    let kb = SigningKey::generate(Alg::ES256, Some("b"));
    let up = TestIssuer::start(&[&ka]).await;
    let down = TestIssuer::start(&[&kb]).await;
    down.script(|s| s.jwks_status = 502);
    let mut down_cfg = cfg(&down);
    down_cfg.max_wait = Duration::from_millis(200);
    let app = Running::start(vec![cfg(&up), down_cfg]).await;
    let client = app.client().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(client
        .bearer(&ka.mint(&up.claims(AUD, "a")))
        .await
        .allowed());
    assert_eq!(
        client
            .bearer(&kb.mint(&down.claims(AUD, "b")))
            .await
            .http_status,
        503
    );
    // A token naming the healthy issuer is never sent to the other one.
    assert_eq!(down.other_requests(), 0);
}

#[tokio::test]
async fn cache_file_serves_last_known_good_keys_when_provider_is_down_at_start() {
    let k1 = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&k1]).await;
    let dir = tempdir();
    let mut c = cfg(&issuer);
    c.cache_file = Some(dir.join("jwks-cache.json"));
    let first = Running::start(vec![c.clone()]).await;
    first.wait_ready().await;
    first.stop().await;
    assert!(
        dir.join("jwks-cache.json").exists(),
        "last good JWKS persisted"
    );

    issuer.script(|s| {
        s.jwks_status = 500;
        s.metadata_status = 500;
    });
    let (_second, client) = ready_app(vec![c]).await;
    assert!(client
        .bearer(&k1.mint(&issuer.claims(AUD, "a")))
        .await
        .allowed());
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jwt-authz-test-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
