//! The "measured choice" behind jwt-authz's verifier: the same RS256 / ES256 tokens verified by
//! the `jsonwebtoken` 12 crate (aws-lc-rs backend, `DecodingKey` built from the JWK components,
//! as an application using it would hold them) and by jwt-authz (keys pre-parsed into aws-lc-rs
//! `ParsedPublicKey`s when the JWKS arrives).
//!
//! Two levels are compared: the signature alone (`jsonwebtoken::crypto::verify` vs
//! `VerifyKey::verify`) and a full decode with `exp`/`iss`/`aud` validation (`jsonwebtoken::decode`
//! vs `Jws::parse` + lookup + verify + `check_claims`). Run: `cargo bench --bench jsonwebtoken`.

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use jwt_authz::{
    authz::{
        alg::{Alg, AlgSet},
        verify::{self, Jws},
    },
    config::{Config, Issuer, IssuerConfig},
    dev::{self, access_token_claims, SigningKey},
    jwks::{keyset::Lookup, KeySet},
};
use serde_json::Value;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "https://api.example.test";

struct Fixture {
    token: String,
    set: KeySet,
    issuer: Issuer,
    key: DecodingKey,
    algorithm: Algorithm,
    validation: Validation,
}

fn fixture(alg: Alg) -> Fixture {
    let signer = SigningKey::generate(alg, Some("k1"));
    let token = signer.mint(&access_token_claims(
        ISSUER,
        AUDIENCE,
        "bench-user",
        Duration::from_secs(3600),
    ));
    let doc = dev::jwks(&[&signer]);
    let set = KeySet::parse(doc.to_string().as_bytes(), AlgSet::from_iter(Alg::ALL))
        .expect("bench JWKS parses");
    let jwk = &doc["keys"][0];
    let member = |name: &str| jwk[name].as_str().expect("JWK member").to_owned();
    let (key, algorithm) = match alg {
        Alg::RS256 => (
            DecodingKey::from_rsa_components(&member("n"), &member("e")).expect("RSA key"),
            Algorithm::RS256,
        ),
        Alg::ES256 => (
            DecodingKey::from_ec_components(&member("x"), &member("y")).expect("EC key"),
            Algorithm::ES256,
        ),
        other => unreachable!("no jsonwebtoken fixture for {other:?}"),
    };
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    let mut config = Config::default();
    config
        .issuers
        .push(IssuerConfig::new(ISSUER.to_owned(), vec![AUDIENCE.into()]));
    let issuer = config.validate().expect("valid config").issuers.remove(0);
    Fixture {
        token,
        set,
        issuer,
        key,
        algorithm,
        validation,
    }
}

fn jwt_authz_verify(set: &KeySet, jws: &Jws<'_>) -> bool {
    match set.lookup(jws.kid.as_deref(), jws.alg) {
        Lookup::Candidates(keys) => keys
            .iter()
            .any(|k| k.verify(jws.signing_input.as_bytes(), &jws.signature)),
        _ => false,
    }
}

fn compare(c: &mut Criterion) {
    for alg in [Alg::RS256, Alg::ES256] {
        let f = fixture(alg);
        let (message, signature_b64) = f.token.rsplit_once('.').expect("three parts");
        let jws = Jws::parse(&f.token).expect("parses");
        assert!(jwt_authz_verify(&f.set, &jws));
        assert!(jsonwebtoken::crypto::verify(
            signature_b64,
            message.as_bytes(),
            &f.key,
            f.algorithm
        )
        .expect("jsonwebtoken verify runs"));

        let mut g = c.benchmark_group(format!("signature/{}", alg.name()));
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(
                    black_box(signature_b64),
                    black_box(message.as_bytes()),
                    &f.key,
                    f.algorithm,
                )
                .expect("runs")
            })
        });
        g.bench_function("jwt-authz", |b| {
            b.iter(|| jwt_authz_verify(black_box(&f.set), black_box(&jws)))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("decode/{}", alg.name()));
        g.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Value>(black_box(&f.token), &f.key, &f.validation)
                    .expect("valid")
            })
        });
        g.bench_function("jwt-authz", |b| {
            b.iter(|| {
                let jws = Jws::parse(black_box(&f.token)).expect("parses");
                assert!(jwt_authz_verify(&f.set, &jws));
                jws.check_claims(&f.issuer, verify::now()).expect("valid")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, compare);
criterion_main!(benches);
