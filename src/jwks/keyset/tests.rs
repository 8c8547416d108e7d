use serde_json::json;

use super::*;
use crate::dev::{b64, jwks, SigningKey};

fn all() -> AlgSet {
    Alg::ALL.into_iter().collect()
}

fn parse(doc: serde_json::Value) -> Result<KeySet, KeySetError> {
    KeySet::parse(doc.to_string().as_bytes(), all())
}

#[test]
fn parses_rsa_ec_and_okp_keys() {
    let keys = [
        SigningKey::generate(Alg::RS256, Some("r")),
        SigningKey::generate(Alg::ES256, Some("e256")),
        SigningKey::generate(Alg::ES384, Some("e384")),
        SigningKey::generate(Alg::EdDSA, Some("ed")),
    ];
    let set = parse(jwks(&keys.iter().collect::<Vec<_>>())).unwrap();
    assert_eq!(set.keys().len(), 4);
    assert!(set.skipped().is_empty());
}

#[test]
fn skips_unusable_entries_without_rejecting_the_set() {
    let good = SigningKey::generate(Alg::ES256, Some("good"));
    let mut enc = SigningKey::generate(Alg::RS256, Some("enc")).public_jwk();
    enc["use"] = json!("enc");
    let doc = json!({ "keys": [
        good.public_jwk(),
        enc,
        { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
        { "kty": "XYZ", "kid": "weird" },
        { "kty": "RSA", "kid": "no-modulus", "e": "AQAB" },
        { "kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k1" },
        { "kty": "RSA", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB", "kid": "oaep" },
        "not an object",
    ]});
    let set = parse(doc).unwrap();
    assert_eq!(set.keys().len(), 1);
    let reasons: Vec<_> = set.skipped().iter().map(|(_, r)| *r).collect();
    assert_eq!(
        reasons,
        [
            SkipReason::NotForSignatures,
            SkipReason::Symmetric,
            SkipReason::UnknownKeyType,
            SkipReason::InvalidKey,
            SkipReason::UnsupportedCurve,
            SkipReason::UnsupportedAlg,
            SkipReason::InvalidKey,
        ]
    );
}

#[test]
fn rsa_modulus_with_leading_zero_and_padding_is_accepted() {
    let key = SigningKey::generate(Alg::RS256, Some("k"));
    let mut jwk = key.public_jwk();
    let n = b64url(jwk["n"].as_str().unwrap()).unwrap();
    let mut padded = vec![0u8];
    padded.extend_from_slice(&n);
    let mut n_b64 = b64(&padded);
    while n_b64.len() % 4 != 0 {
        n_b64.push('=');
    }
    jwk["n"] = json!(n_b64);
    let set = parse(json!({ "keys": [jwk] })).unwrap();
    let token = key.mint(&json!({"iss": "x"}));
    let (input, sig) = token.rsplit_once('.').unwrap();
    let Lookup::Candidates(c) = set.lookup(Some("k"), Alg::RS256) else {
        panic!("key not found")
    };
    assert!(c[0].verify(input.as_bytes(), &b64url(sig).unwrap()));
}

#[test]
fn key_without_alg_serves_every_allowed_alg_of_its_type() {
    let key = SigningKey::generate(Alg::RS256, None);
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    let set = parse(json!({ "keys": [jwk] })).unwrap();
    assert_eq!(set.keys().len(), 6, "RS256/384/512 and PS256/384/512");
    let only_ps: AlgSet = [Alg::PS256].into_iter().collect();
    let jwk = {
        let mut j = key.public_jwk();
        j.as_object_mut().unwrap().remove("alg");
        j
    };
    let set = KeySet::parse(json!({ "keys": [jwk] }).to_string().as_bytes(), only_ps).unwrap();
    assert_eq!(set.keys().len(), 1);
    assert_eq!(set.keys()[0].alg, Alg::PS256);
}

#[test]
fn lookup_distinguishes_unknown_kid_from_alg_mismatch() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let set = parse(jwks(&[&key])).unwrap();
    assert!(matches!(
        set.lookup(Some("k1"), Alg::ES256),
        Lookup::Candidates(_)
    ));
    assert!(matches!(
        set.lookup(Some("k1"), Alg::RS256),
        Lookup::AlgMismatch
    ));
    assert!(matches!(
        set.lookup(Some("k2"), Alg::ES256),
        Lookup::Unknown
    ));
    assert!(matches!(
        set.lookup(None, Alg::ES256),
        Lookup::Candidates(_)
    ));
}

#[test]
fn alg_tag_must_match_key_type() {
    let mut jwk = SigningKey::generate(Alg::ES256, Some("k")).public_jwk();
    jwk["alg"] = json!("RS256");
    assert_eq!(
        parse(json!({ "keys": [jwk] })).unwrap_err(),
        KeySetError::NoUsableKeys { skipped: 1 }
    );
}

#[test]
fn rejects_documents_that_are_not_key_sets() {
    assert!(matches!(
        KeySet::parse(b"[]", all()),
        Err(KeySetError::NotAKeySet(_))
    ));
    assert!(matches!(
        KeySet::parse(b"{\"keys\": 3}", all()),
        Err(KeySetError::NotAKeySet(_))
    ));
    assert_eq!(
        KeySet::parse(b"{\"keys\": []}", all()).unwrap_err(),
        KeySetError::NoUsableKeys { skipped: 0 }
    );
}

#[test]
fn caps_the_number_of_entries() {
    let key = SigningKey::generate(Alg::EdDSA, None);
    let jwk = key.public_jwk();
    let doc = json!({ "keys": vec![jwk; MAX_KEYS + 5] });
    let set = parse(doc).unwrap();
    assert_eq!(set.keys().len(), MAX_KEYS);
    assert_eq!(set.skipped().len(), 5);
}
