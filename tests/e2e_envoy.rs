//! End-to-end: a real Envoy (ext_authz filter, gRPC) in front of an echo upstream, asking
//! `jwt-authz serve`, which trusts a real OpenID Provider (node-oidc-provider issuing RFC 9068
//! client_credentials tokens). Each test starts its own system on free loopback ports.
//!
//! Needs Envoy and oidc-provider installed: run `scripts/setup-e2e` once. Without them the tests
//! fail (never skip). `ENVOY_BIN` and `NODE_BIN` override where the binaries are looked up.

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/ports.rs"]
mod ports;

use std::time::Duration;

use e2e::{within, E2e, API_AUDIENCE, OTHER_RESOURCE, SHORT_LIVED_RESOURCE};

/// Upper bound for one test's steps after startup (each startup stage has its own deadline). The
/// fixture lives outside the timed future so that on a timeout it drops while the test panics,
/// which prints the logs.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Asserts a 401 whose RFC 6750 challenge says `error="invalid_token"`, that the deny body
/// says the same, and that the upstream was never reached.
#[track_caller]
fn assert_invalid_token(
    reply: &e2e::Reply,
    upstream_hits_before: usize,
    upstream_hits_after: usize,
) {
    let challenge = reply.challenge();
    assert!(
        challenge.starts_with("Bearer realm="),
        "challenge should start with `Bearer realm=`: {challenge}"
    );
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "challenge should carry error=\"invalid_token\" (RFC 6750 §3.1): {challenge}"
    );
    assert_eq!(
        reply.json_error().as_deref(),
        Some("invalid_token"),
        "deny body should be JSON with error invalid_token: {reply:#?}"
    );
    assert_eq!(
        upstream_hits_before, upstream_hits_after,
        "a denied request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_reaches_upstream_with_subject_and_issuer() {
    let sys = E2e::start("valid_token").await;
    within(TEST_LIMIT, "the valid token steps", async {
        let token = sys.token(API_AUDIENCE).await;
        assert_eq!(token.claim("aud"), API_AUDIENCE);

        let reply = sys.get("/hello?x=1", Some(&token.raw), &[]).await;

        let seen = reply.echo();
        assert_eq!(
            seen.one("x-jwt-sub"),
            token.claim("sub"),
            "x-jwt-sub is the token's sub"
        );
        assert_eq!(seen.one("x-jwt-iss"), sys.issuer, "x-jwt-iss is the issuer");
        assert_eq!(token.claim("iss"), sys.issuer);
        assert_eq!(sys.upstream_hits(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_identity_headers_are_replaced() {
    let sys = E2e::start("spoofed_headers").await;
    within(TEST_LIMIT, "the spoofed headers steps", async {
        let token = sys.token(API_AUDIENCE).await;

        let reply = sys
            .get(
                "/",
                Some(&token.raw),
                &[
                    ("x-jwt-sub", "spoofed"),
                    ("x-jwt-iss", "https://evil.example"),
                ],
            )
            .await;

        // `one` also fails if the spoofed copy survived next to the real one.
        let seen = reply.echo();
        assert_eq!(seen.one("x-jwt-sub"), token.claim("sub"));
        assert_eq!(seen.one("x-jwt-iss"), sys.issuer);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_gets_bare_bearer_challenge() {
    let sys = E2e::start("missing_token").await;
    within(TEST_LIMIT, "the missing token steps", async {
        let reply = sys.get("/", None, &[("x-jwt-sub", "spoofed")]).await;

        // RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
        let challenge = reply.challenge();
        assert!(
            challenge.starts_with("Bearer realm="),
            "challenge should start with `Bearer realm=`: {challenge}"
        );
        assert!(
            !challenge.contains("error="),
            "no error= without a token: {challenge}"
        );
        assert_eq!(
            sys.upstream_hits(),
            0,
            "a denied request reached the upstream"
        );
        assert_eq!(
            sys.denials("missing_token").await,
            1,
            "denied for the missing token"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_signature_is_invalid_token() {
    let sys = E2e::start("tampered").await;
    within(TEST_LIMIT, "the tampered steps", async {
        let token = sys.token(API_AUDIENCE).await;
        // The untouched token is accepted, so the denial below is the tampering's doing.
        assert_eq!(sys.get("/", Some(&token.raw), &[]).await.status, 200);
        let hits = sys.upstream_hits();

        let reply = sys.get("/", Some(&token.tampered()), &[]).await;

        assert_invalid_token(&reply, hits, sys.upstream_hits());
        assert_eq!(
            sys.denials("bad_signature").await,
            1,
            "denied for the signature"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_invalid_token() {
    let sys = E2e::start("expired").await;
    within(TEST_LIMIT, "the expired steps", async {
        let token = sys.token(SHORT_LIVED_RESOURCE).await;
        // Same audience as the accepted one: only the lifetime differs.
        assert_eq!(token.claim("aud"), API_AUDIENCE);
        let ttl = token.claims["exp"].as_i64().unwrap() - token.claims["iat"].as_i64().unwrap();
        assert!(
            ttl <= 2,
            "short-lived resource should give a ≤2 s token, got {ttl} s"
        );

        // jwt-authz runs with leeway 0 s; wait until just past `exp` by the wall clock.
        let wait = token.secs_to_expiry() + 1.2;
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        let hits = sys.upstream_hits();

        let reply = sys.get("/", Some(&token.raw), &[]).await;

        assert_invalid_token(&reply, hits, sys.upstream_hits());
        assert_eq!(sys.denials("expired").await, 1, "denied for expiry");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_audience_is_invalid_token() {
    let sys = E2e::start("wrong_audience").await;
    within(TEST_LIMIT, "the wrong audience steps", async {
        let token = sys.token(OTHER_RESOURCE).await;
        assert_eq!(token.claim("aud"), OTHER_RESOURCE);
        assert_eq!(
            token.claim("iss"),
            sys.issuer,
            "same issuer: only the audience is wrong"
        );

        let reply = sys.get("/", Some(&token.raw), &[]).await;

        assert_invalid_token(&reply, 0, sys.upstream_hits());
        assert_eq!(
            sys.denials("bad_audience").await,
            1,
            "denied for the audience"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signing_key_is_accepted_without_restart() {
    let mut sys = E2e::start("rotation").await;
    within(TEST_LIMIT, "the rotation steps", async {
        let before = sys.token(API_AUDIENCE).await;
        assert_eq!(before.header["kid"], "e2e-key-1");
        assert_eq!(sys.get("/", Some(&before.raw), &[]).await.status, 200);

        // Same port, same issuer, a new signing key: jwt-authz has never seen this kid.
        sys.rotate_provider_key("e2e-key-2").await;
        let after = sys.token(API_AUDIENCE).await;
        assert_eq!(after.header["kid"], "e2e-key-2");

        let reply = sys.get("/", Some(&after.raw), &[]).await;

        let seen = reply.echo();
        assert_eq!(seen.one("x-jwt-sub"), after.claim("sub"));
        assert_eq!(seen.one("x-jwt-iss"), sys.issuer);
    })
    .await;
}
