//! Development issuer: signing keys minted in process, tokens signed with them, and a tiny
//! loopback HTTP server publishing discovery metadata and the JWKS. It backs `jwt-authz demo`
//! and the test suites; `serve` never starts it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aws_lc_rs::{
    rand::SystemRandom,
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair},
};
use axum::{extract::State, routing::get, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{json, Value};

use crate::authz::alg::Alg;

/// base64url without padding (RFC 7515 §2).
pub fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its `kid` and algorithm.
pub struct SigningKey {
    pub kid: Option<String>,
    pub alg: Alg,
    private: Private,
}

impl SigningKey {
    /// Generates a fresh key for `alg` (RSA keys are 2048 bits).
    pub fn generate(alg: Alg, kid: Option<&str>) -> Self {
        let private = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Private::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
            }
            Alg::ES256 => Private::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("P-256 key generation"),
            ),
            Alg::ES384 => Private::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("P-384 key generation"),
            ),
            Alg::EdDSA => Private::Ed(Ed25519KeyPair::generate().expect("Ed25519 key generation")),
        };
        Self {
            kid: kid.map(str::to_owned),
            alg,
            private,
        }
    }

    /// The same key material under another algorithm (e.g. one RSA key for RS256 and RS512).
    pub fn with_alg(self, alg: Alg) -> Self {
        Self { alg, ..self }
    }

    /// The public JWK (RFC 7517 §4), with `use: sig`, `alg` and `kid`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.private {
            Private::Rsa(k) => json!({
                "kty": "RSA",
                "n": b64(k.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(k.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Private::Ec(k) => {
                let point = k.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if len == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + len]),
                    "y": b64(&point[1 + len..]),
                })
            }
            Private::Ed(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(k.public_key().as_ref()),
            }),
        };
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg.name());
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// Signs `input` with this key's algorithm; ECDSA in the JOSE R‖S form.
    pub fn sign_raw(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.private {
            Private::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Alg::RS256 => &signature::RSA_PKCS1_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, input, &mut sig).expect("RSA signing");
                sig
            }
            Private::Ec(k) => k
                .sign(&rng, input)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Private::Ed(k) => k.sign(input).as_ref().to_vec(),
        }
    }

    /// A compact JWS with exactly this header and payload JSON text.
    pub fn sign_parts(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_raw(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// An RFC 9068 access token (`typ: at+jwt`) carrying `claims`.
    pub fn mint(&self, claims: &Value) -> String {
        let mut header = json!({ "alg": self.alg.name(), "typ": "at+jwt" });
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        self.sign_parts(&header.to_string(), &claims.to_string())
    }
}

/// A JWKS document with these keys' public halves.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims of a typical RFC 9068 access token for `issuer` and `audience`, valid for `ttl`.
pub fn access_token_claims(issuer: &str, audience: &str, subject: &str, ttl: Duration) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "client_id": "demo-client",
        "scope": "read write",
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs() as i64,
        "jti": format!("{:016x}", rand::random::<u64>()),
    })
}

/// A running development issuer.
pub struct DevIssuer {
    pub issuer: String,
    pub addr: SocketAddr,
    pub key: Arc<SigningKey>,
}

impl DevIssuer {
    /// Serves discovery and JWKS on `addr` (use port 0 for any free port) until the task ends.
    pub async fn start(addr: SocketAddr) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let key = Arc::new(SigningKey::generate(Alg::RS256, Some("dev-1")));
        let state = (issuer.clone(), key.clone());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks_doc))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((Self { issuer, addr, key }, task))
    }

    /// A token for `audience` and `subject`, valid for an hour.
    pub fn token(&self, audience: &str, subject: &str) -> String {
        self.key.mint(&access_token_claims(
            &self.issuer,
            audience,
            subject,
            Duration::from_secs(3600),
        ))
    }
}

type DevState = (String, Arc<SigningKey>);

async fn discovery(State((issuer, _)): State<DevState>) -> Json<Value> {
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks_doc(State((_, key)): State<DevState>) -> Json<Value> {
    Json(jwks(&[&key]))
}
