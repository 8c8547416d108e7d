//! A parsed JSON Web Key Set (RFC 7517 §5): each JWK is parsed on its own and turned into
//! pre-built verification keys, one per (key, algorithm) pair it may verify. An unusable entry is
//! skipped and counted; it never rejects the whole set. Only public members are ever read.

use std::{fmt, time::SystemTime};

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use serde::Deserialize;

use crate::authz::alg::{Alg, AlgSet, KeyKind};

/// Upper bound on entries considered in one set; a larger set is cut here (and counted).
pub const MAX_KEYS: usize = 100;

/// A public key ready to verify one algorithm.
pub struct VerifyKey {
    pub kid: Option<Box<str>>,
    pub alg: Alg,
    /// Stable identity of the key material + algorithm (for caches keyed by the verifying key).
    pub fingerprint: u64,
    key: ParsedPublicKey,
}

impl VerifyKey {
    /// Verifies `signature` over `message` (the JWS signing input, RFC 7515 §5.2).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a JWK entry was not used (bounded metric label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// `use` other than `sig`, or `key_ops` without `verify` (RFC 7517 §4.2, §4.3).
    NotForSignatures,
    /// `kty: oct` — a shared secret never belongs in a public key set (RFC 8725 §3.1).
    Symmetric,
    UnknownKeyType,
    UnsupportedCurve,
    /// `alg` is not one jwt-authz implements (e.g. HS256, RSA-OAEP).
    UnsupportedAlg,
    /// `alg` names a different key type than `kty`/`crv`.
    AlgKeyMismatch,
    /// The algorithm is valid but not in this issuer's allowlist.
    AlgNotAllowed,
    /// Missing or undecodable members, or a key the crypto library refuses (e.g. RSA < 2048 bits).
    InvalidKey,
    /// Beyond [`MAX_KEYS`].
    TooMany,
}

impl SkipReason {
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::NotForSignatures => "not_for_signatures",
            SkipReason::Symmetric => "symmetric",
            SkipReason::UnknownKeyType => "unknown_kty",
            SkipReason::UnsupportedCurve => "unsupported_curve",
            SkipReason::UnsupportedAlg => "unsupported_alg",
            SkipReason::AlgKeyMismatch => "alg_key_mismatch",
            SkipReason::AlgNotAllowed => "alg_not_allowed",
            SkipReason::InvalidKey => "invalid_key",
            SkipReason::TooMany => "too_many",
        }
    }
}

/// Why a whole document was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeySetError {
    #[error("JWKS is not a JSON object with a `keys` array: {0}")]
    NotAKeySet(String),
    #[error("JWKS holds no usable key ({skipped} entries skipped)")]
    NoUsableKeys { skipped: usize },
}

/// An immutable key set; replaced as a whole when a new one is fetched.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    skipped: Vec<(Option<String>, SkipReason)>,
    pub fetched_at: SystemTime,
}

/// The outcome of looking a token's key up.
pub enum Lookup<'a> {
    /// Keys that may have signed it (same `kid` or kid-less, same `alg`).
    Candidates(Vec<&'a VerifyKey>),
    /// A key with that `kid` exists, but not for this `alg` (no refetch will help).
    AlgMismatch,
    /// No key with that `kid`: the set may be out of date.
    Unknown,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The members of one JWK that jwt-authz reads (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document, keeping keys usable with `allowed` algorithms.
    pub fn parse(body: &[u8], allowed: AlgSet) -> Result<KeySet, KeySetError> {
        Self::parse_at(body, allowed, SystemTime::now())
    }

    /// As [`KeySet::parse`], for a document obtained at `fetched_at` (e.g. a cache file).
    pub fn parse_at(
        body: &[u8],
        allowed: AlgSet,
        fetched_at: SystemTime,
    ) -> Result<KeySet, KeySetError> {
        let raw: RawSet =
            serde_json::from_slice(body).map_err(|e| KeySetError::NotAKeySet(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, value) in raw.keys.into_iter().enumerate() {
            if i >= MAX_KEYS {
                skipped.push((None, SkipReason::TooMany));
                continue;
            }
            let jwk: RawJwk = match serde_json::from_value(value) {
                Ok(j) => j,
                Err(_) => {
                    skipped.push((None, SkipReason::InvalidKey));
                    continue;
                }
            };
            let kid = jwk.kid.clone();
            match parse_jwk(&jwk, allowed) {
                Ok(mut vks) => keys.append(&mut vks),
                Err(reason) => skipped.push((kid, reason)),
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKeys {
                skipped: skipped.len(),
            });
        }
        Ok(KeySet {
            keys,
            skipped,
            fetched_at,
        })
    }

    /// Finds the keys that may verify a token with this header (RFC 7515 §4.1.4: `kid` is a hint
    /// that selects among keys; the algorithm must match the key's too, RFC 8725 §3.1).
    pub fn lookup(&self, kid: Option<&str>, alg: Alg) -> Lookup<'_> {
        let mut candidates = Vec::new();
        let mut kid_seen = false;
        for key in &self.keys {
            let kid_ok = match (kid, key.kid.as_deref()) {
                (Some(want), Some(have)) => {
                    let same = want == have;
                    kid_seen |= same;
                    same
                }
                _ => true,
            };
            if kid_ok && key.alg == alg {
                candidates.push(key);
            }
        }
        if !candidates.is_empty() {
            Lookup::Candidates(candidates)
        } else if kid_seen {
            Lookup::AlgMismatch
        } else {
            Lookup::Unknown
        }
    }

    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    /// Entries not used, with their `kid` (from the provider's document) and why.
    pub fn skipped(&self) -> &[(Option<String>, SkipReason)] {
        &self.skipped
    }
}

fn parse_jwk(jwk: &RawJwk, allowed: AlgSet) -> Result<Vec<VerifyKey>, SkipReason> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(SkipReason::NotForSignatures);
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err(SkipReason::NotForSignatures);
    }
    let kind = match (jwk.kty.as_deref(), jwk.crv.as_deref()) {
        (Some("RSA"), _) => KeyKind::Rsa,
        (Some("EC"), Some("P-256")) => KeyKind::EcP256,
        (Some("EC"), Some("P-384")) => KeyKind::EcP384,
        (Some("OKP"), Some("Ed25519")) => KeyKind::Ed25519,
        (Some("EC" | "OKP"), _) => return Err(SkipReason::UnsupportedCurve),
        (Some("oct"), _) => return Err(SkipReason::Symmetric),
        _ => return Err(SkipReason::UnknownKeyType),
    };
    let algs: Vec<Alg> = match jwk.alg.as_deref() {
        Some(name) => {
            let alg = Alg::from_name(name).ok_or(SkipReason::UnsupportedAlg)?;
            if alg.key_kind() != kind {
                return Err(SkipReason::AlgKeyMismatch);
            }
            if !allowed.contains(alg) {
                return Err(SkipReason::AlgNotAllowed);
            }
            vec![alg]
        }
        // RFC 7517 §4.4: `alg` is optional; the key then serves every allowed algorithm of its type.
        None => allowed.iter().filter(|a| a.key_kind() == kind).collect(),
    };
    if algs.is_empty() {
        return Err(SkipReason::AlgNotAllowed);
    }
    let material = KeyMaterial::decode(jwk, kind)?;
    algs.into_iter()
        .map(|alg| {
            let key = material.build(alg).ok_or(SkipReason::InvalidKey)?;
            Ok(VerifyKey {
                kid: jwk.kid.as_deref().map(Into::into),
                alg,
                fingerprint: material.fingerprint(alg),
                key,
            })
        })
        .collect()
}

/// Decoded public key bytes.
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 ‖ x ‖ y`.
    Ec(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl KeyMaterial {
    fn decode(jwk: &RawJwk, kind: KeyKind) -> Result<Self, SkipReason> {
        let member = |m: &Option<String>| -> Result<Vec<u8>, SkipReason> {
            m.as_deref().and_then(b64url).ok_or(SkipReason::InvalidKey)
        };
        Ok(match kind {
            KeyKind::Rsa => {
                // RFC 7518 §6.3.1.1 says no leading zero octets, but some providers add one
                // (a DER habit); strip them so any big-endian encoding of the modulus works.
                let n = strip_leading_zeros(member(&jwk.n)?);
                let e = strip_leading_zeros(member(&jwk.e)?);
                if n.is_empty() || e.is_empty() {
                    return Err(SkipReason::InvalidKey);
                }
                KeyMaterial::Rsa { n, e }
            }
            KeyKind::EcP256 | KeyKind::EcP384 => {
                let len = if kind == KeyKind::EcP256 { 32 } else { 48 };
                let x = left_pad(member(&jwk.x)?, len)?;
                let y = left_pad(member(&jwk.y)?, len)?;
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec(point)
            }
            KeyKind::Ed25519 => {
                let x = member(&jwk.x)?;
                if x.len() != 32 {
                    return Err(SkipReason::InvalidKey);
                }
                KeyMaterial::Ed25519(x)
            }
        })
    }

    fn build(&self, alg: Alg) -> Option<ParsedPublicKey> {
        match self {
            KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(alg.rsa_params()?)
            .ok(),
            KeyMaterial::Ec(point) | KeyMaterial::Ed25519(point) => {
                ParsedPublicKey::new(alg.verification(), point).ok()
            }
        }
    }

    fn fingerprint(&self, alg: Alg) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        alg.hash(&mut h);
        match self {
            KeyMaterial::Rsa { n, e } => {
                n.hash(&mut h);
                e.hash(&mut h);
            }
            KeyMaterial::Ec(p) | KeyMaterial::Ed25519(p) => p.hash(&mut h),
        }
        h.finish()
    }
}

/// base64url with or without `=` padding (RFC 7515 §2 says without; some providers pad).
pub(crate) fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

/// base64url decoding for test code outside the crate.
#[doc(hidden)]
pub fn b64url_for_tests(s: &str) -> Vec<u8> {
    b64url(s).unwrap_or_default()
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

fn left_pad(v: Vec<u8>, len: usize) -> Result<Vec<u8>, SkipReason> {
    match v.len().cmp(&len) {
        std::cmp::Ordering::Equal => Ok(v),
        std::cmp::Ordering::Greater => Err(SkipReason::InvalidKey),
        std::cmp::Ordering::Less => {
            let mut out = vec![0; len - v.len()];
            out.extend_from_slice(&v);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests;
