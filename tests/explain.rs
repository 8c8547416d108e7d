//! `jwt-authz explain` and `check-config` (issue #7), run as the real binary against a real
//! test issuer, and the admin `/debug/keys` endpoint.

mod support;

use std::process::Output;

use jwt_authz::dev::SigningKey;
use serde_json::{json, Value};
use support::*;

const AUD: &str = "https://api.test";

async fn explain(issuer: &TestIssuer, token: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_jwt-authz"));
    cmd.args([
        "explain",
        "--issuer",
        &issuer.issuer,
        "--audience",
        AUD,
        "--token",
        token,
    ])
    .args(extra)
    .env("NO_COLOR", "1");
    let out: Output = tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
        .await
        .expect("explain finishes")
        .expect("explain runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

fn failing_step(report: &str) -> Option<&str> {
    report
        .lines()
        .find(|l| l.starts_with("[FAIL]"))
        .map(|l| l[6..].split_whitespace().next().unwrap_or(""))
}

#[tokio::test]
async fn explains_an_allowed_token() {
    let key = SigningKey::generate(Alg::RS256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let (code, report) = explain(&issuer, &key.mint(&issuer.claims(AUD, "alice")), &[]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(failing_step(&report), None, "{report}");
    assert!(report.contains("[ok  ] signature"), "{report}");
    assert!(report.contains("verdict: ALLOW"), "{report}");
    assert!(
        report.contains("upstream header x-jwt-sub: alice"),
        "{report}"
    );
    assert_eq!(issuer.discovery_requests(), 1, "discovery is live");
}

#[tokio::test]
async fn explains_an_expired_token() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let mut c = issuer.claims(AUD, "alice");
    c["exp"] = json!(now() - 3600);
    let (code, report) = explain(&issuer, &key.mint(&c), &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(failing_step(&report), Some("exp"), "{report}");
    assert!(report.contains("verdict: DENY (expired)"), "{report}");
    assert!(report.contains("response: HTTP 401"), "{report}");
    assert!(report.contains("error=\"invalid_token\""), "{report}");
}

#[tokio::test]
async fn explains_a_wrong_audience() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let (code, report) = explain(
        &issuer,
        &key.mint(&issuer.claims("https://other", "alice")),
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(failing_step(&report), Some("audience"), "{report}");
    assert!(report.contains("verdict: DENY (bad_audience)"), "{report}");
}

#[tokio::test]
async fn explains_an_unknown_kid() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let stranger = SigningKey::generate(Alg::ES256, Some("who"));
    let (code, report) = explain(&issuer, &stranger.mint(&issuer.claims(AUD, "alice")), &[]).await;
    assert_eq!(code, 1);
    assert_eq!(failing_step(&report), Some("key"), "{report}");
    assert!(report.contains("no key with kid \"who\""), "{report}");
    assert!(report.contains("verdict: DENY (unknown_kid)"), "{report}");
}

#[tokio::test]
async fn check_config_accepts_valid_and_rejects_invalid_files() {
    let dir = std::env::temp_dir().join(format!("jwt-authz-cc-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n",
    )
    .unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n  leway: 5s\n",
    )
    .unwrap();
    let run = |f: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jwt-authz"))
            .arg("check-config")
            .arg(f)
            .output()
            .unwrap()
    };
    let ok = run(&good);
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid"));
    let err = run(&bad);
    assert_eq!(err.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(msg.contains("leway"), "names the unknown field: {msg}");
    // `--config FILE`, as `serve` and `explain` take it, works too.
    let flag = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-authz"))
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(0), "{flag:?}");
    let summary = String::from_utf8_lossy(&flag.stdout);
    assert!(
        summary.contains("profile rfc9068"),
        "config spelling: {summary}"
    );
}

#[tokio::test]
async fn debug_keys_lists_public_keys_per_issuer() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let mut enc = SigningKey::generate(Alg::RS256, Some("enc-key")).public_jwk();
    enc["use"] = json!("enc");
    issuer.set_raw_keys(vec![key.public_jwk(), enc]);
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    app.wait_ready().await;
    let text = reqwest::get(format!("http://{}/debug/keys", app.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let i = &body["issuers"][0];
    assert_eq!(i["issuer"], issuer.issuer.as_str());
    assert_eq!(i["jwks_uri"], format!("{}/jwks", issuer.issuer));
    assert_eq!(i["keys"][0]["kid"], "k1");
    assert_eq!(i["keys"][0]["alg"], "ES256");
    assert_eq!(
        i["skipped"][0],
        json!({"kid": "enc-key", "reason": "not_for_signatures"})
    );
    assert!(
        i["fetched_at"].is_string() && i["expires_at"].is_string(),
        "{i}"
    );
    let text = body.to_string();
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"x\"", "\"y\""] {
        assert!(!text.contains(private), "no key material at all: {text}");
    }
}
