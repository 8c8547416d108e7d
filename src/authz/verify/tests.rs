use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{
    config::{Config, Issuer},
    dev::{access_token_claims, b64, SigningKey},
};

fn issuer() -> Issuer {
    let cfg = Config::from_yaml(
        "issuers:\n- issuer: https://idp.example\n  audiences: [api, other]\n  leeway: 10s\n",
    )
    .unwrap();
    cfg.validate().unwrap().issuers.remove(0)
}

fn claims_with(patch: serde_json::Value) -> serde_json::Value {
    let mut c = access_token_claims(
        "https://idp.example",
        "api",
        "alice",
        Duration::from_secs(60),
    );
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn check(claims: serde_json::Value) -> Result<Claims, Deny> {
    let key = SigningKey::generate(Alg::ES256, Some("k"));
    let token = key.mint(&claims);
    Jws::parse(&token)?.check_claims(&issuer(), now())
}

#[test]
fn parses_header_and_payload() {
    let key = SigningKey::generate(Alg::ES256, Some("k"));
    let token = key.mint(&claims_with(json!({})));
    let jws = Jws::parse(&token).unwrap();
    assert_eq!(jws.alg, Alg::ES256);
    assert_eq!(jws.kid.as_deref(), Some("k"));
    assert_eq!(jws.typ.as_deref(), Some("at+jwt"));
    assert_eq!(jws.iss, "https://idp.example");
    assert_eq!(jws.signature.len(), 64, "JOSE R||S form for P-256");
}

#[test]
fn valid_claims_pass_and_expose_sub() {
    let c = check(claims_with(json!({}))).unwrap();
    assert_eq!(c.sub.as_deref(), Some("alice"));
}

#[test]
fn expired_within_leeway_passes_beyond_fails() {
    let t = now() as i64;
    assert!(check(claims_with(json!({"exp": t - 5}))).is_ok());
    assert_eq!(
        check(claims_with(json!({"exp": t - 11}))).unwrap_err(),
        Deny::Expired
    );
}

#[test]
fn not_yet_valid_beyond_leeway_fails() {
    let t = now() as i64;
    assert!(check(claims_with(json!({"nbf": t + 5}))).is_ok());
    assert_eq!(
        check(claims_with(json!({"nbf": t + 30}))).unwrap_err(),
        Deny::NotYetValid
    );
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    assert_eq!(
        check(claims_with(json!({"exp": null}))).unwrap_err(),
        Deny::InvalidClaim("exp")
    );
    let far = (now() as i64 + 600).to_string();
    assert_eq!(
        check(claims_with(json!({"exp": far}))).unwrap_err(),
        Deny::InvalidClaim("exp")
    );
    assert!(
        check(claims_with(json!({"exp": now() + 600.5}))).is_ok(),
        "fractional NumericDate"
    );
}

#[test]
fn audience_string_or_array_must_intersect() {
    assert!(check(claims_with(json!({"aud": ["x", "other"]}))).is_ok());
    assert_eq!(
        check(claims_with(json!({"aud": "x"}))).unwrap_err(),
        Deny::BadAudience
    );
    assert_eq!(
        check(claims_with(json!({"aud": null}))).unwrap_err(),
        Deny::NoAudience {
            claims: vec!["aud".into()]
        }
    );
}

#[test]
fn rejects_none_and_hmac_algorithms() {
    let payload = b64(claims_with(json!({})).to_string());
    for alg in ["none", "HS256", "HS512"] {
        let token = format!("{}.{payload}.c2ln", b64(format!(r#"{{"alg":"{alg}"}}"#)));
        assert_eq!(
            Jws::parse(&token).unwrap_err(),
            Deny::UnsupportedAlg,
            "{alg}"
        );
    }
    let unsigned = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
    assert!(Jws::parse(&unsigned).is_err());
}

#[test]
fn rejects_jwe_and_garbage() {
    assert_eq!(
        Jws::parse("a.b.c.d.e").unwrap_err(),
        Deny::Malformed("encrypted tokens (JWE) are not accepted")
    );
    assert!(matches!(Jws::parse("abc").unwrap_err(), Deny::Malformed(_)));
    assert!(matches!(
        Jws::parse("a.b.c").unwrap_err(),
        Deny::Malformed(_)
    ));
    assert!(matches!(
        Jws::parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
        Deny::Malformed(_)
    ));
}

#[test]
fn rejects_crit_and_nested_tokens() {
    let key = SigningKey::generate(Alg::ES256, None);
    let payload = claims_with(json!({})).to_string();
    for header in [
        r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"ES256","crit":[]}"#,
        r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"ES256","cty":"JWT"}"#,
    ] {
        let token = key.sign_parts(header, &payload);
        assert!(
            matches!(Jws::parse(&token).unwrap_err(), Deny::Malformed(_)),
            "{header}"
        );
    }
}

#[test]
fn rejects_duplicate_claims() {
    let key = SigningKey::generate(Alg::ES256, None);
    let token = key.sign_parts(
        r#"{"alg":"ES256"}"#,
        r#"{"iss":"https://idp.example","sub":"a","sub":"admin"}"#,
    );
    assert!(matches!(
        Jws::parse(&token).unwrap_err(),
        Deny::Malformed(_)
    ));
}

#[test]
fn rejects_duplicate_header_parameters() {
    let key = SigningKey::generate(Alg::ES256, None);
    let token = key.sign_parts(
        r#"{"alg":"ES256","kid":"a","kid":"b"}"#,
        &claims_with(json!({})).to_string(),
    );
    assert_eq!(
        Jws::parse(&token).unwrap_err(),
        Deny::Malformed("duplicate member name in the header")
    );
}

#[test]
fn rejects_duplicate_claims_at_any_depth() {
    let key = SigningKey::generate(Alg::ES256, None);
    let token = key.sign_parts(
        r#"{"alg":"ES256"}"#,
        r#"{"iss":"https://idp.example","realm_access":{"roles":["a"],"roles":["admin"]}}"#,
    );
    assert_eq!(
        Jws::parse(&token).unwrap_err(),
        Deny::Malformed("duplicate member name in the claims")
    );
}

#[test]
fn header_size_is_bounded_after_decoding() {
    let key = SigningKey::generate(Alg::ES256, None);
    let payload = claims_with(json!({})).to_string();
    let header = |pad: usize| format!(r#"{{"alg":"ES256","x":"{}"}}"#, "a".repeat(pad));
    let at_limit = header(MAX_HEADER_BYTES - header(0).len());
    assert_eq!(at_limit.len(), MAX_HEADER_BYTES);
    assert!(Jws::parse(&key.sign_parts(&at_limit, &payload)).is_ok());
    let over = header(MAX_HEADER_BYTES + 1 - header(0).len());
    assert_eq!(
        Jws::parse(&key.sign_parts(&over, &payload)).unwrap_err(),
        Deny::Malformed("header is too large")
    );
    // Far over: refused on the encoded length, before decoding.
    let huge = format!("{}.e30.c2ln", "A".repeat(8 * 1024));
    assert_eq!(
        Jws::parse(&huge).unwrap_err(),
        Deny::Malformed("header is too large")
    );
}

#[test]
fn rejects_ecdsa_and_eddsa_signatures_of_the_wrong_length() {
    let payload = b64(claims_with(json!({})).to_string());
    for (alg, ok_len) in [("ES256", 64), ("ES384", 96), ("EdDSA", 64)] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#));
        for len in [ok_len - 1, ok_len + 1, ok_len + 8] {
            let token = format!("{header}.{payload}.{}", b64(vec![1u8; len]));
            assert_eq!(
                Jws::parse(&token).unwrap_err(),
                Deny::Malformed("signature has the wrong length for its algorithm"),
                "{alg} {len}"
            );
        }
        let token = format!("{header}.{payload}.{}", b64(vec![1u8; ok_len]));
        assert!(Jws::parse(&token).is_ok(), "{alg}");
    }
}

#[test]
fn rejects_nested_tokens_whatever_the_spelling_of_cty() {
    let key = SigningKey::generate(Alg::ES256, None);
    let payload = claims_with(json!({})).to_string();
    for cty in [
        r#""JWT""#,
        r#""jwt""#,
        r#""application/JWT""#,
        r#""Application/jwt""#,
        "1",
    ] {
        let token = key.sign_parts(&format!(r#"{{"alg":"ES256","cty":{cty}}}"#), &payload);
        assert_eq!(
            Jws::parse(&token).unwrap_err(),
            Deny::Malformed("nested tokens are not accepted"),
            "{cty}"
        );
    }
    let token = key.sign_parts(r#"{"alg":"ES256","cty":"json"}"#, &payload);
    assert!(Jws::parse(&token).is_ok());
}

#[test]
fn rejects_padded_and_non_canonical_base64url() {
    let key = SigningKey::generate(Alg::ES256, None);
    let token = key.mint(&claims_with(json!({})));
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert!(matches!(
        Jws::parse(&format!("{input}.{sig}==")).unwrap_err(),
        Deny::Malformed(_)
    ));
    // `e30` is `{}`; `e31` decodes to the same bytes with non-zero trailing bits.
    assert!(matches!(
        Jws::parse(&format!("e31.{}", &input[input.find('.').unwrap() + 1..])).unwrap_err(),
        Deny::Malformed(_)
    ));
}
