//! Micro-benchmarks of the check pipeline, one step at a time: bearer extraction, the untrusted
//! header/payload peek, key lookup + signature verification per algorithm, the claims check, and
//! the whole pipeline (`authorize`, `decide`) with and without the verified-token cache, against a
//! key set fetched from a loopback dev issuer.
//!
//! Run: `cargo bench --bench check` (figures are recorded in BENCHMARKS.md). Nothing here asserts
//! a time; a benchmark only panics if the fixture itself is wrong (e.g. a token fails to verify).

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jwt_authz::authz::{
    cache::{CacheConfig, TokenCache},
    policy::{DefaultAction, Policy},
    token::TokenSource,
    Decision,
};
use jwt_authz::{
    authz::{
        alg::{Alg, AlgSet},
        token,
        verify::{self, Jws},
        Authorizer, AuthzRequest, Headers, Responder,
    },
    config::{Config, Issuer, IssuerConfig, UpstreamHeaders},
    dev::{self, access_token_claims, DevIssuer, SigningKey},
    jwks::{keyset::Lookup, store::Cause, IssuerKeys, KeySet},
    metrics::{Frontend, Metrics},
};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "https://api.example.test";

/// The algorithms measured one by one (RSA at 2048 bits, as `SigningKey::generate` makes them).
const ALGS: [Alg; 5] = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::ES384, Alg::EdDSA];

fn issuer(id: &str) -> Issuer {
    let mut config = Config::default();
    config
        .issuers
        .push(IssuerConfig::new(id.to_owned(), vec![AUDIENCE.into()]));
    config
        .validate()
        .expect("bench issuer config is valid")
        .issuers
        .remove(0)
}

/// A typical RFC 9068 access token (~600–800 bytes for RSA) for `key`.
fn token_for(key: &SigningKey) -> String {
    key.mint(&access_token_claims(
        ISSUER,
        AUDIENCE,
        "bench-user",
        Duration::from_secs(3600),
    ))
}

fn key_set(key: &SigningKey) -> KeySet {
    let doc = dev::jwks(&[key]).to_string();
    KeySet::parse(doc.as_bytes(), AlgSet::from_iter(Alg::ALL)).expect("bench JWKS parses")
}

/// Lookup + verify, exactly as the store's hot path does it for a known key.
fn verify_with(set: &KeySet, jws: &Jws<'_>) -> bool {
    match set.lookup(jws.kid.as_deref(), jws.alg) {
        Lookup::Candidates(keys) => keys
            .iter()
            .any(|k| k.verify(jws.signing_input.as_bytes(), &jws.signature)),
        _ => false,
    }
}

fn extraction(c: &mut Criterion) {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let header = format!("Bearer {}", token_for(&key));
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Bytes(header.len() as u64));
    g.bench_function("bearer", |b| {
        b.iter(|| token::bearer(black_box(&header)).expect("bearer parses"))
    });
    // Through the request abstraction, as the gRPC front end calls it (a HashMap of headers).
    let headers: std::collections::HashMap<String, String> = [
        ("authorization", header.as_str()),
        (":authority", "api.example.test"),
        (":method", "GET"),
        (":path", "/things/1"),
        ("user-agent", "h2load"),
        ("x-request-id", "5bd0ff1a-3d3e-4c1f-9f3e-0b4c9d9f2a11"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    g.bench_function("from_request", |b| {
        b.iter(|| {
            let req = AuthzRequest {
                method: "GET",
                host: "api.example.test",
                path: "/things/1",
                headers: Headers::Map(black_box(&headers)),
            };
            token::extract(&req).map(str::len).expect("token found")
        })
    });
    g.finish();
}

fn peek(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for alg in [Alg::RS256, Alg::ES256] {
        let key = SigningKey::generate(alg, Some("k1"));
        let token = token_for(&key);
        g.throughput(Throughput::Bytes(token.len() as u64));
        g.bench_function(alg.name(), |b| {
            b.iter(|| Jws::parse(black_box(&token)).expect("token parses"))
        });
    }
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    for alg in ALGS {
        let key = SigningKey::generate(alg, Some("k1"));
        let token = token_for(&key);
        let set = key_set(&key);
        let jws = Jws::parse(&token).expect("token parses");
        assert!(
            verify_with(&set, &jws),
            "{} fixture must verify",
            alg.name()
        );
        // Lookup + signature check on an already parsed token: the crypto cost.
        g.bench_function(format!("{}/signature", alg.name()), |b| {
            b.iter(|| verify_with(black_box(&set), black_box(&jws)))
        });
        // Parse + lookup + signature: what a check costs before the claims.
        g.bench_function(format!("{}/parse+signature", alg.name()), |b| {
            b.iter(|| {
                let jws = Jws::parse(black_box(&token)).expect("token parses");
                verify_with(&set, &jws)
            })
        });
    }
    g.finish();
}

fn claims(c: &mut Criterion) {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let token = token_for(&key);
    let issuer = issuer(ISSUER);
    let now = verify::now();
    c.bench_function("claims/check", |b| {
        b.iter_batched(
            || Jws::parse(&token).expect("token parses"),
            |jws| {
                jws.check_claims(black_box(&issuer), now)
                    .expect("claims valid")
            },
            BatchSize::SmallInput,
        )
    });
}

fn key_set_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwks_parse");
    for alg in [Alg::RS256, Alg::ES256] {
        let key = SigningKey::generate(alg, Some("k1"));
        let doc = dev::jwks(&[&key]).to_string();
        // Without `alg`, a JWK builds one verifying key per allowed algorithm of its type.
        g.bench_function(alg.name(), |b| {
            b.iter(|| KeySet::parse(black_box(doc.as_bytes()), AlgSet::from_iter(Alg::ALL)))
        });
    }
    g.finish();
}

/// The whole pipeline (`Authorizer::authorize`, and `decide`, which also records metrics and
/// builds the allow response) with keys fetched over HTTP from the dev issuer (RS256, as
/// `jwt-authz demo` signs), on a current-thread runtime: without the verified-token cache (every
/// call verifies) and with it (every call after the first is a hit).
fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (dev, _task) = rt
        .block_on(DevIssuer::start("127.0.0.1:0".parse().expect("addr")))
        .expect("dev issuer starts");
    let authorizer = |cache: bool| {
        rt.block_on(async {
            let metrics = Arc::new(Metrics::new());
            let keys = IssuerKeys::new(issuer(&dev.issuer), &metrics).expect("issuer keys");
            let report = keys.fetch(Cause::Scheduled).await.expect("fetch ran");
            assert!(report.ok, "keys fetched from the dev issuer");
            let responder = Responder::new(
                "jwt-authz".into(),
                UpstreamHeaders::default(),
                "jwt_authz".into(),
                None,
            );
            let policy = Policy::compile(&[], DefaultAction::Authenticated, &[dev.issuer.as_str()])
                .expect("empty policy");
            Authorizer::new(
                vec![keys],
                policy,
                vec![TokenSource::Authorization],
                responder,
                metrics,
            )
            .with_cache(
                cache
                    .then(|| TokenCache::new(&CacheConfig::default()))
                    .flatten(),
            )
        })
    };
    let header = format!("Bearer {}", dev.token(AUDIENCE, "bench-user"));
    let headers = [("authorization".to_owned(), header)].into_iter().collect();
    let req = AuthzRequest {
        method: "GET",
        host: "api.example.test",
        path: "/",
        headers: Headers::Map(&headers),
    };
    let mut g = c.benchmark_group("pipeline");
    for (name, cache) in [("no cache", false), ("cache hit", true)] {
        let authorizer = authorizer(cache);
        g.bench_function(format!("authorize/RS256/{name}"), |b| {
            b.iter(|| {
                rt.block_on(authorizer.authorize(black_box(&req)))
                    .expect("allowed")
            })
        });
        g.bench_function(format!("decide/RS256/{name}"), |b| {
            b.iter(
                || match rt.block_on(authorizer.decide(black_box(&req), Frontend::Grpc)) {
                    Decision::Allow(a) => a,
                    Decision::Deny(d) => panic!("denied: {d:?}"),
                },
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    extraction,
    peek,
    signatures,
    claims,
    key_set_parse,
    pipeline
);
criterion_main!(benches);
