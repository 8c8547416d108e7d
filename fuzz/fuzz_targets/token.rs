//! Token parse + signature verification + claim checks against a fixed key set: never panic,
//! never accept a signature from a key of another algorithm, never let a token through that
//! breaks the size limits.

#![no_main]

use std::sync::LazyLock;

use jwt_authz::{
    authz::{
        alg::{Alg, AlgSet},
        verify::{Jws, MAX_TOKEN_BYTES},
    },
    config::{Config, Issuer},
    dev::b64,
    jwks::{keyset::Lookup, KeySet},
};
use libfuzzer_sys::fuzz_target;

/// A fixed "now" keeps runs reproducible (the seeds' tokens are valid at this time).
const NOW: f64 = 1_800_000_000.0;

static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    let all: AlgSet = Alg::ALL.into_iter().collect();
    KeySet::parse(include_bytes!("../fixtures/jwks.json"), all).expect("fixture JWKS parses")
});

static ISSUER: LazyLock<Issuer> = LazyLock::new(|| {
    Config::from_yaml("issuers:\n- issuer: https://idp.fuzz\n  audiences: [https://api.fuzz]\n")
        .and_then(|c| c.validate())
        .expect("fixture config")
        .issuers
        .remove(0)
});

fuzz_target!(|data: &[u8]| {
    // Two shapes, so mutations reach the JSON without having to rediscover base64url: a raw
    // compact token, or `header \0 claims \0 signature`, encoded here.
    let built;
    let token = match split3(data) {
        Some((h, p, s)) => {
            built = format!("{}.{}.{}", b64(h), b64(p), b64(s));
            built.as_str()
        }
        None => match std::str::from_utf8(data) {
            Ok(t) => t,
            Err(_) => return,
        },
    };
    let Ok(jws) = Jws::parse(token) else { return };
    assert!(token.len() <= MAX_TOKEN_BYTES);
    let verified = match KEYS.lookup(jws.kid.as_deref(), jws.alg) {
        Lookup::Candidates(keys) => keys.iter().any(|k| {
            // RFC 8725 §3.1: a key only ever verifies the algorithm it was built for.
            assert_eq!(k.alg, jws.alg);
            k.verify(jws.signing_input.as_bytes(), &jws.signature)
        }),
        Lookup::AlgMismatch | Lookup::Unknown => false,
    };
    // The claim checks are pure: run them whether or not the signature held, for coverage.
    let iss = jws.iss.clone();
    if let Ok(claims) = jws.check_claims(&ISSUER, NOW) {
        assert_eq!(claims.iss, iss);
        assert!(claims.exp + ISSUER.leeway.as_secs_f64() > NOW);
    }
    let _ = verified;
});

fn split3(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut it = data.splitn(3, |b| *b == 0);
    let (h, p, s) = (it.next()?, it.next()?, it.next()?);
    Some((h, p, s))
}
