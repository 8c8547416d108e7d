//! The RFC 8725 attack suite, through the real gRPC Check surface against a real HTTP issuer on
//! 127.0.0.1:0. Every forgery here is built the way an attacker would build it (signed where a
//! signature helps the attack) and must be denied with 401 and an exact `error_description`.

mod support;

use std::time::{Duration, Instant};

use aws_lc_rs::{hmac, signature};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use jwt_authz::{
    authz::verify::{MAX_HEADER_BYTES, MAX_TOKEN_BYTES},
    dev::SigningKey,
};
use serde_json::{json, Value};
use support::*;

const AUD: &str = "https://api.test";

const ALG_REFUSED: &str = "the token's signing algorithm is not accepted";
const BAD_SIGNATURE: &str = "the token's signature is invalid";
const UNKNOWN_KEY: &str = "the token's signing key is not known to the issuer";
const CRIT: &str = "malformed token: unsupported critical header parameter";

async fn setup(alg: Alg) -> (TestIssuer, Running, Checker, SigningKey) {
    let key = SigningKey::generate(alg, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    app.wait_ready().await;
    let client = app.client().await;
    (issuer, app, client, key)
}

/// 401, `invalid_token`, and exactly this description in both the body and the challenge.
#[track_caller]
fn assert_denied(o: &Outcome, description: &str) {
    assert_eq!(o.http_status, 401, "{o:?}");
    assert_eq!(o.rpc_code, 16, "UNAUTHENTICATED: {o:?}");
    assert_eq!(o.description(), description, "{o:?}");
    assert_eq!(
        o.www_authenticate(),
        format!(
            "Bearer realm=\"jwt-authz\", error=\"invalid_token\", error_description=\"{}\"",
            description.replace('"', "'")
        )
    );
}

fn claims_text(issuer: &TestIssuer) -> String {
    issuer.claims(AUD, "alice").to_string()
}

/// `header.payload` with a signature made by `key` over exactly those bytes.
fn sign_input(key: &SigningKey, header: &str, payload: &str) -> String {
    key.sign_parts(header, payload)
}

fn hs256(secret: &[u8], header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn parts(token: &str) -> (&str, &str, &str) {
    let mut it = token.split('.');
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

// === DER helpers (to build the RSA public key the way `openssl` would print it) ===

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut v = Vec::new();
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend(trimmed);
    der(0x02, &v)
}

/// PKCS#1 `RSAPublicKey` and X.509 `SubjectPublicKeyInfo` DER of an RSA public JWK.
fn rsa_public_der(jwk: &Value) -> (Vec<u8>, Vec<u8>) {
    let n = b64d(jwk["n"].as_str().unwrap());
    let e = b64d(jwk["e"].as_str().unwrap());
    let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    let algorithm = der(
        0x30,
        &[
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let bits = der(0x03, &[&[0u8][..], &pkcs1].concat());
    let spki = der(0x30, &[algorithm, bits].concat());
    (pkcs1, spki)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// An RS256 setup plus the RSA public key in PKCS#1 and SPKI DER, checked to be the real key.
async fn rsa_setup() -> (TestIssuer, Running, Checker, SigningKey, Vec<u8>, Vec<u8>) {
    let (issuer, app, client, key) = setup(Alg::RS256).await;
    let (pkcs1, spki) = rsa_public_der(&key.public_jwk());
    // The DER really is this key: a genuine RS256 signature verifies under it.
    let token = key.mint(&issuer.claims(AUD, "alice"));
    let (h, p, s) = parts(&token);
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &pkcs1)
        .verify(format!("{h}.{p}").as_bytes(), &b64d(s))
        .expect("PKCS#1 DER built from the JWK is the signing key");
    assert!(client.bearer(&token).await.allowed());
    (issuer, app, client, key, pkcs1, spki)
}

/// Every HS256 variant of a token keyed with `secret` (with and without the real `kid`).
async fn assert_hmac_refused(client: &Checker, issuer: &TestIssuer, secret: &[u8]) {
    for header in [
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
    ] {
        let token = hs256(secret, header, &claims_text(issuer));
        assert_denied(&client.bearer(&token).await, ALG_REFUSED);
    }
}

// === alg: none and HMAC with the public key (RFC 8725 §2.1, §3.1) ===

#[tokio::test]
async fn rejects_alg_none() {
    let (issuer, _app, client, _key) = setup(Alg::RS256).await;
    let payload = b64(claims_text(&issuer));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#));
        for sig in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{sig}");
            assert_denied(&client.bearer(&token).await, ALG_REFUSED);
        }
    }
}

#[tokio::test]
async fn rejects_hs256_keyed_with_rsa_public_key_pem() {
    let (issuer, _app, client, _key, pkcs1, spki) = rsa_setup().await;
    let spki_pem = pem("PUBLIC KEY", &spki);
    let pkcs1_pem = pem("RSA PUBLIC KEY", &pkcs1);
    for secret in [
        spki_pem.as_bytes(),
        spki_pem.trim_end().as_bytes(),
        pkcs1_pem.as_bytes(),
    ] {
        assert_hmac_refused(&client, &issuer, secret).await;
    }
}

#[tokio::test]
async fn rejects_hs256_keyed_with_rsa_public_key_der() {
    let (issuer, _app, client, _key, pkcs1, spki) = rsa_setup().await;
    for secret in [&spki, &pkcs1] {
        assert_hmac_refused(&client, &issuer, secret).await;
    }
}

#[tokio::test]
async fn rejects_hs256_keyed_with_rsa_public_key_raw_modulus() {
    let (issuer, _app, client, key, _pkcs1, _spki) = rsa_setup().await;
    let jwk = key.public_jwk();
    let n_b64 = jwk["n"].as_str().unwrap().to_owned();
    let n = b64d(&n_b64);
    let n_with_zero = [&[0u8][..], &n].concat();
    let jwk_text = jwk.to_string();
    for secret in [&n[..], &n_with_zero, n_b64.as_bytes(), jwk_text.as_bytes()] {
        assert_hmac_refused(&client, &issuer, secret).await;
    }
}

#[tokio::test]
async fn rejects_alg_swapped_to_another_algorithm_of_the_same_key() {
    // The JWKS pins k1 to RS256; a PS256 signature by the very same private key is refused
    // because the key's algorithm, not the token's, decides (RFC 8725 §3.1).
    let (issuer, _app, client, key) = setup(Alg::RS256).await;
    let ps = key.with_alg(Alg::PS256);
    let token = ps.mint(&issuer.claims(AUD, "alice"));
    assert_denied(
        &client.bearer(&token).await,
        "the token's algorithm does not match its key",
    );
}

// === crit (RFC 7515 §4.1.11, RFC 7797 §6) ===

#[tokio::test]
async fn rejects_unknown_crit() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    for header in [
        r#"{"alg":"ES256","kid":"k1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"ES256","kid":"k1","crit":["http://example.com/x"],"http://example.com/x":true}"#,
        r#"{"alg":"ES256","kid":"k1","crit":["missing"]}"#,
        r#"{"alg":"ES256","kid":"k1","crit":"exp"}"#,
    ] {
        let token = sign_input(&key, header, &claims_text(&issuer));
        assert_denied(&client.bearer(&token).await, CRIT);
    }
}

#[tokio::test]
async fn rejects_empty_crit() {
    // RFC 7515 §4.1.11: producers must not use an empty list; it is an error, not a no-op.
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let token = sign_input(
        &key,
        r#"{"alg":"ES256","kid":"k1","crit":[]}"#,
        &claims_text(&issuer),
    );
    assert_denied(&client.bearer(&token).await, CRIT);
}

#[tokio::test]
async fn rejects_b64_crit() {
    // RFC 7797 unencoded payloads change what the signature covers; jwt-authz does not
    // implement them, so it must refuse rather than verify the wrong bytes.
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let header = r#"{"alg":"ES256","kid":"k1","b64":false,"crit":["b64"]}"#;
    let token = sign_input(&key, header, &claims_text(&issuer));
    assert_denied(&client.bearer(&token).await, CRIT);
    // Signed over the RFC 7797 input (raw payload), sent in the only form a header can carry.
    let raw_input = format!("{}.{}", b64(header), claims_text(&issuer));
    let sig = key.sign_raw(raw_input.as_bytes());
    let token = format!("{}.{}.{}", b64(header), b64(claims_text(&issuer)), b64(sig));
    assert_denied(&client.bearer(&token).await, CRIT);
}

// === jku / x5u / jwk / x5c: never a source of keys (RFC 8725 §3.10) ===

/// Sends tokens signed by an attacker key whose header points at an attacker server; the server
/// must see no request at all, and only the configured issuer may be asked for keys (once, for
/// the unknown `kid`, rate-limited).
async fn assert_header_key_ignored(extra: impl Fn(&TestIssuer, &SigningKey) -> Value) {
    let (issuer, _app, client, _key) = setup(Alg::ES256).await;
    let attacker_key = SigningKey::generate(Alg::ES256, Some("attacker"));
    let attacker = TestIssuer::start(&[&attacker_key]).await;
    let jwks_before = issuer.jwks_requests();
    let claims = claims_text(&issuer);
    for (kid, expected) in [
        (Some("k1"), BAD_SIGNATURE),
        (Some("attacker"), UNKNOWN_KEY),
        (None, BAD_SIGNATURE),
    ] {
        let mut header = json!({ "alg": "ES256", "typ": "at+jwt" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        for (k, v) in extra(&attacker, &attacker_key).as_object().unwrap() {
            header[k] = v.clone();
        }
        let token = sign_input(&attacker_key, &header.to_string(), &claims);
        assert_denied(&client.bearer(&token).await, expected);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attacker_seen =
        attacker.discovery_requests() + attacker.jwks_requests() + attacker.other_requests();
    assert_eq!(attacker_seen, 0, "the attacker's server was contacted");
    assert_eq!(
        issuer.jwks_requests(),
        jwks_before + 1,
        "only the configured issuer is asked, once, for the unknown kid"
    );
}

#[tokio::test]
async fn never_fetches_jku_header() {
    assert_header_key_ignored(|a, _| json!({ "jku": format!("{}/jwks", a.issuer) })).await;
}

#[tokio::test]
async fn never_fetches_x5u_header() {
    assert_header_key_ignored(|a, _| json!({ "x5u": format!("{}/cert.pem", a.issuer) })).await;
}

#[tokio::test]
async fn never_fetches_jwk_header() {
    // The attacker's public key embedded in the header, plus a jku for good measure.
    assert_header_key_ignored(
        |a, k| json!({ "jwk": k.public_jwk(), "jku": format!("{}/jwks", a.issuer) }),
    )
    .await;
}

#[tokio::test]
async fn never_fetches_x5c_header() {
    // x5c carries DER certificates (standard base64); its content is never parsed, so any DER
    // will do, and an x5u next to it must not be followed either.
    assert_header_key_ignored(|a, k| {
        let point = [
            &[0x04u8][..],
            &b64d(k.public_jwk()["x"].as_str().unwrap()),
            &b64d(k.public_jwk()["y"].as_str().unwrap()),
        ]
        .concat();
        json!({
            "x5c": [STANDARD.encode(der(0x30, &der(0x03, &[&[0u8][..], &point].concat())))],
            "x5u": format!("{}/chain.pem", a.issuer),
        })
    })
    .await;
}

// === JWE and nested JWTs (RFC 7516, RFC 7519 §5.2) ===

#[tokio::test]
async fn rejects_jwe() {
    let (_issuer, _app, client, _key) = setup(Alg::ES256).await;
    let header = b64(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k1","cty":"JWT"}"#);
    let r = |n: usize| b64((0..n).map(|i| i as u8).collect::<Vec<_>>());
    for token in [
        format!("{header}.{}.{}.{}.{}", r(256), r(12), r(300), r(16)),
        // `dir` key management: an empty encrypted key.
        format!(
            "{}..{}.{}.{}",
            b64(r#"{"alg":"dir","enc":"A128GCM"}"#),
            r(12),
            r(64),
            r(16)
        ),
    ] {
        assert_denied(
            &client.bearer(&token).await,
            "malformed token: encrypted tokens (JWE) are not accepted",
        );
    }
}

#[tokio::test]
async fn rejects_nested_jwt() {
    // Both layers signed by the issuer's own key: the worst case, still refused.
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let inner = key.mint(&issuer.claims(AUD, "alice"));
    for cty in ["JWT", "jwt", "application/JWT"] {
        let header = json!({ "alg": "ES256", "kid": "k1", "cty": cty }).to_string();
        for payload in [inner.clone(), claims_text(&issuer)] {
            let token = sign_input(&key, &header, &payload);
            assert_denied(
                &client.bearer(&token).await,
                "malformed token: nested tokens are not accepted",
            );
        }
    }
}

// === size limits ===

#[tokio::test]
async fn rejects_oversize_token() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let mut claims = issuer.claims(AUD, "alice");
    claims["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = key.mint(&claims);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_denied(
        &client.bearer(&token).await,
        "malformed token: token is too large",
    );
    // Half a megabyte of token is refused just the same (and cheaply).
    let huge = format!("{}.{}", token, "A".repeat(512 << 10));
    assert_denied(
        &client.bearer(&huge).await,
        "malformed token: token is too large",
    );
    // A CheckRequest over 1 MiB is refused by the gRPC layer before jwt-authz reads it; Envoy
    // then fails closed (status_on_error).
    let giant = format!("{}.{}", token, "A".repeat(1 << 20));
    let req = check_request(
        "GET",
        "api.test",
        "/",
        &[("authorization", &format!("Bearer {giant}"))],
    );
    let err = client.raw(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
}

#[tokio::test]
async fn rejects_oversize_header() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let header = json!({ "alg": "ES256", "kid": "k1", "x5c": ["A".repeat(MAX_HEADER_BYTES)] });
    let token = sign_input(&key, &header.to_string(), &claims_text(&issuer));
    assert!(token.len() < MAX_TOKEN_BYTES, "within the token limit");
    assert_denied(
        &client.bearer(&token).await,
        "malformed token: header is too large",
    );
}

// === signature encodings and integrity ===

/// `R‖S` (RFC 7518 §3.4) as an ASN.1 `ECDSA-Sig-Value` (the X9.62/DER form).
fn rs_to_der(rs: &[u8]) -> Vec<u8> {
    let (r, s) = rs.split_at(rs.len() / 2);
    der(0x30, &[der_uint(r), der_uint(s)].concat())
}

#[tokio::test]
async fn rejects_der_encoded_ecdsa_signature() {
    for alg in [Alg::ES256, Alg::ES384] {
        let (issuer, _app, client, key) = setup(alg).await;
        let token = key.mint(&issuer.claims(AUD, "alice"));
        assert!(client.bearer(&token).await.allowed(), "the R‖S original");
        let (h, p, s) = parts(&token);
        let der_sig = rs_to_der(&b64d(s));
        assert_eq!(der_sig[0], 0x30);
        let forged = format!("{h}.{p}.{}", b64(der_sig));
        assert_denied(
            &client.bearer(&forged).await,
            "malformed token: signature has the wrong length for its algorithm",
        );
    }
}

#[tokio::test]
async fn rejects_header_changed_after_signing() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let token = key.mint(&issuer.claims(AUD, "alice"));
    assert!(client.bearer(&token).await.allowed());
    let (_, p, s) = parts(&token);
    for header in [
        r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#,
        // The same members in another order: other bytes, so another signing input.
        r#"{"kid":"k1","typ":"at+jwt","alg":"ES256"}"#,
        r#"{"alg":"ES256","typ":"at+jwt","kid":"k1","x5u":"https://evil.example/x"}"#,
    ] {
        let forged = format!("{}.{p}.{s}", b64(header));
        assert_denied(&client.bearer(&forged).await, BAD_SIGNATURE);
    }
}

#[tokio::test]
async fn rejects_signature_from_enc_key() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let enc1 = SigningKey::generate(Alg::ES256, Some("enc-1"));
    let enc2 = SigningKey::generate(Alg::ES256, Some("enc-2"));
    let issuer = TestIssuer::start(&[]).await;
    let mut jwk1 = enc1.public_jwk();
    jwk1["use"] = json!("enc");
    jwk1["alg"] = json!("ECDH-ES");
    let mut jwk2 = enc2.public_jwk();
    jwk2.as_object_mut().unwrap().remove("use");
    jwk2["key_ops"] = json!(["encrypt", "wrapKey"]);
    issuer.set_raw_keys(vec![key.public_jwk(), jwk1, jwk2]);
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    app.wait_ready().await;
    let client = app.client().await;
    let claims = issuer.claims(AUD, "alice");
    assert!(client.bearer(&key.mint(&claims)).await.allowed());
    assert_denied(&client.bearer(&enc1.mint(&claims)).await, UNKNOWN_KEY);
    assert_denied(&client.bearer(&enc2.mint(&claims)).await, UNKNOWN_KEY);
    // Without a kid, the encryption key is still never a candidate.
    let header = r#"{"alg":"ES256","typ":"at+jwt"}"#;
    let token = sign_input(&enc1, header, &claims.to_string());
    assert_denied(&client.bearer(&token).await, BAD_SIGNATURE);
}

// === claim set JSON (RFC 7519 §2, §4) ===

#[tokio::test]
async fn rejects_duplicate_claim_names() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let iss = &issuer.issuer;
    let (now, soon) = (now(), now() + 300);
    let header = r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#;
    for payload in [
        format!(r#"{{"iss":"{iss}","aud":"{AUD}","exp":{soon},"sub":"alice","sub":"admin"}}"#),
        format!(
            r#"{{"iss":"{iss}","aud":"{AUD}","exp":{},"exp":{soon}}}"#,
            now - 3600
        ),
        format!(r#"{{"iss":"{iss}","aud":"https://other","aud":"{AUD}","exp":{soon}}}"#),
        format!(r#"{{"iss":"{iss}","aud":"{AUD}","exp":{soon},"s\u0075b":"a","sub":"b"}}"#),
        format!(
            r#"{{"iss":"{iss}","aud":"{AUD}","exp":{soon},"realm_access":{{"roles":["user"],"roles":["admin"]}}}}"#
        ),
    ] {
        let token = sign_input(&key, header, &payload);
        assert_denied(
            &client.bearer(&token).await,
            "malformed token: duplicate member name in the claims",
        );
    }
    let token = sign_input(
        &key,
        r#"{"alg":"ES256","kid":"k1","kid":"k2"}"#,
        &claims_text(&issuer),
    );
    assert_denied(
        &client.bearer(&token).await,
        "malformed token: duplicate member name in the header",
    );
}

#[tokio::test]
async fn rejects_exp_as_string() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    for exp in [
        json!((now() + 300).to_string()),
        json!("2099-01-01T00:00:00Z"),
        json!(null),
        json!([now() + 300]),
    ] {
        let mut claims = issuer.claims(AUD, "alice");
        claims["exp"] = exp;
        assert_denied(
            &client.bearer(&key.mint(&claims)).await,
            "the token's exp claim is missing or invalid",
        );
    }
    // The same instant as a JSON number, integer or fractional, is fine (RFC 7519 §2).
    let mut claims = issuer.claims(AUD, "alice");
    claims["exp"] = json!(now() as f64 + 300.25);
    assert!(client.bearer(&key.mint(&claims)).await.allowed());
}

// === resource bounds ===

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// One distinct garbage token; every fourth is well-formed enough to reach the key lookup
/// with a random `kid` (the only path that may trigger a fetch).
fn garbage(i: usize, iss: &str) -> String {
    let noise = |n: usize| (0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>();
    let pad = rand::random::<u32>() as usize % 4096;
    match i % 4 {
        0 => format!("{}.{}.{}", b64(noise(40)), b64(noise(pad)), b64(noise(64))),
        1 => b64(noise(pad + 16)),
        2 => format!(
            "{}.{}.{}",
            b64(format!(
                r#"{{"alg":"ES256","kid":"{i}-{:x}"}}"#,
                rand::random::<u64>()
            )),
            b64(format!(
                r#"{{"iss":"{iss}","aud":"{AUD}","exp":{},"pad":"{}"}}"#,
                now() + 300,
                "p".repeat(pad)
            )),
            b64(noise(64))
        ),
        _ => format!(
            "{}.{}.{}",
            b64(format!(r#"{{"alg":"RS256","kid":"{i}"}}"#)),
            b64(format!(
                r#"{{"iss":"https://stranger-{i}.example","pad":"{}"}}"#,
                "q".repeat(pad)
            )),
            b64(noise(256))
        ),
    }
}

async fn flood(client: &Checker, iss: &str, range: std::ops::Range<usize>) {
    const TASKS: usize = 32;
    let tasks = (0..TASKS).map(|t| {
        let client = client.clone();
        let iss = iss.to_owned();
        let range = range.clone();
        tokio::spawn(async move {
            for i in range.skip(t).step_by(TASKS) {
                let token = garbage(i, &iss);
                let o = client.bearer(&token).await;
                assert_eq!(o.http_status, 401, "garbage #{i} was not denied: {o:?}");
            }
        })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_token_flood_keeps_memory_bounded() {
    const WARMUP: usize = 2_000;
    const FLOOD: usize = 20_000;
    const COOLDOWN: Duration = Duration::from_secs(10);
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let mut config = issuer_config(&issuer.issuer, AUD);
    config.unknown_kid_cooldown = COOLDOWN;
    let app = Running::start(vec![config]).await;
    app.wait_ready().await;
    let client = app.client().await;
    let discovery_before = issuer.discovery_requests();
    let jwks_before = issuer.jwks_requests();
    let started = Instant::now();

    flood(&client, &issuer.issuer, 0..WARMUP).await;
    let rss_before = vm_rss_kib();
    flood(&client, &issuer.issuer, WARMUP..WARMUP + FLOOD).await;
    let rss_after = vm_rss_kib();
    let elapsed = started.elapsed();

    eprintln!(
        "flood: {FLOOD} tokens in {elapsed:?}, RSS {rss_before} → {rss_after} KiB, {} JWKS fetches",
        issuer.jwks_requests() - jwks_before
    );
    // ~50 MiB of distinct tokens went through; keeping them (or anything per token) would
    // show. The bound is generous: other tests share this process.
    let growth_mib = rss_after.saturating_sub(rss_before) / 1024;
    assert!(
        growth_mib < 32,
        "RSS grew {growth_mib} MiB ({rss_before} → {rss_after} KiB) over {FLOOD} garbage tokens"
    );
    // No fetch storm: unknown kids refetch at most once per cooldown, discovery never.
    let refetches = issuer.jwks_requests() - jwks_before;
    let allowed = 1 + (elapsed.as_secs_f64() / COOLDOWN.as_secs_f64()).ceil() as usize;
    assert!(
        refetches <= allowed,
        "{refetches} JWKS fetches in {elapsed:?}; at most {allowed} allowed by the cooldown"
    );
    assert_eq!(issuer.discovery_requests(), discovery_before);
    // And the real token still works afterwards.
    assert!(client
        .bearer(&key.mint(&issuer.claims(AUD, "alice")))
        .await
        .allowed());
}
