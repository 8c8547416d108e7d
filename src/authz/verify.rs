//! Token verification, in the order RFC 8725 asks for: parse the JWS compact serialization
//! without trusting it (RFC 7515 §5.2), pick the issuer by exact `iss`, find the key by `kid`
//! *and* `alg`, verify the signature, then check the claims (RFC 7519 §7.2). Nothing in the token
//! header is used to locate or fetch keys (`jku`, `x5u`, `jwk`, `x5c` are ignored).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{Map, Value};

use super::{
    alg::Alg,
    claims::{self, Claims, JsonError},
    Deny,
};
use crate::config::Issuer;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A decoded JOSE header larger than this is refused (real headers are well under 1 KiB; a
/// large one can only be padding or an attempt to smuggle `jwk`/`x5c` material).
pub const MAX_HEADER_BYTES: usize = 4 * 1024;

/// A token split and decoded, not yet trusted. Its `Debug` output leaves out the signing input
/// and signature, so a stray `{:?}` can never put a usable token in a log.
pub struct Jws<'t> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// `BASE64URL(header) . BASE64URL(payload)`, the bytes the signature covers.
    pub signing_input: &'t str,
    pub signature: Vec<u8>,
    pub iss: String,
    pub payload: Map<String, Value>,
}

impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

fn b64(part: &str) -> Option<Vec<u8>> {
    // Strict: no padding, canonical trailing bits (RFC 7515 §2), so one token has one encoding.
    URL_SAFE_NO_PAD.decode(part).ok()
}

impl<'t> Jws<'t> {
    /// Splits and decodes a compact JWS. Fails closed on anything unexpected.
    pub fn parse(token: &'t str) -> Result<Self, Deny> {
        Self::parse_limited(token, MAX_TOKEN_BYTES)
    }

    /// As [`Jws::parse`], with the configured `max_token_bytes`.
    pub fn parse_limited(token: &'t str, max_token_bytes: usize) -> Result<Self, Deny> {
        if token.len() > max_token_bytes {
            return Err(Deny::Malformed("token is too large"));
        }
        let dots = token.bytes().filter(|b| *b == b'.').count();
        match dots {
            2 => {}
            // RFC 7516 §9: five parts is a JWE; jwt-authz accepts signed tokens only.
            4 => return Err(Deny::Malformed("encrypted tokens (JWE) are not accepted")),
            _ => return Err(Deny::Malformed("not a JWS compact serialization")),
        }
        let (signing_input, sig) = token
            .rsplit_once('.')
            .ok_or(Deny::Malformed("no signature"))?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or(Deny::Malformed("no payload"))?;
        // Bound the header before decoding it: base64url of MAX_HEADER_BYTES is at most this long.
        if header_b64.len() > MAX_HEADER_BYTES.div_ceil(3) * 4 {
            return Err(Deny::Malformed("header is too large"));
        }
        let header = b64(header_b64).ok_or(Deny::Malformed("header is not base64url"))?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(Deny::Malformed("header is too large"));
        }
        let header = claims::parse_object(&header).map_err(|e| match e {
            // RFC 7515 §4: Header Parameter names must be unique.
            JsonError::DuplicateMember => Deny::Malformed("duplicate member name in the header"),
            JsonError::Invalid => Deny::Malformed("header is not a JSON object"),
        })?;
        let alg = match header.get("alg") {
            Some(Value::String(name)) => Alg::from_name(name).ok_or(Deny::UnsupportedAlg)?,
            _ => return Err(Deny::Malformed("header has no alg")),
        };
        // RFC 7515 §4.1.11: a recipient must reject `crit` extensions it does not implement, and
        // jwt-authz implements none (including `b64`, RFC 7797).
        if header.contains_key("crit") {
            return Err(Deny::Malformed("unsupported critical header parameter"));
        }
        // RFC 7519 §5.2: `cty: JWT` marks a nested JWT; an access token is never nested. The
        // media type is case-insensitive and may carry its `application/` prefix (RFC 7515
        // §4.1.10), so `application/JWT` is the same thing.
        if let Some(cty) = header.get("cty") {
            let media = cty.as_str().map(|c| {
                let lower = c.to_ascii_lowercase();
                lower
                    .strip_prefix("application/")
                    .unwrap_or(&lower)
                    .to_owned()
            });
            if media.is_none_or(|m| m == "jwt") {
                return Err(Deny::Malformed("nested tokens are not accepted"));
            }
        }
        let kid =
            optional_string(&header, "kid").map_err(|_| Deny::Malformed("kid is not a string"))?;
        let typ =
            optional_string(&header, "typ").map_err(|_| Deny::Malformed("typ is not a string"))?;
        if sig.is_empty() {
            return Err(Deny::Malformed("empty signature"));
        }
        let signature = b64(sig).ok_or(Deny::Malformed("signature is not base64url"))?;
        if fixed_signature_len(alg).is_some_and(|len| signature.len() != len) {
            // RFC 7518 §3.4: an ECDSA signature is the fixed-length R‖S concatenation, never
            // DER; RFC 8037 §3.1: Ed25519 signatures are 64 octets. Refused before any crypto.
            return Err(Deny::Malformed(
                "signature has the wrong length for its algorithm",
            ));
        }
        let payload = b64(payload_b64).ok_or(Deny::Malformed("claims are not base64url"))?;
        let payload = claims::parse_object(&payload).map_err(|e| match e {
            // RFC 7519 §4: Claim Names within a JWT Claims Set must be unique.
            JsonError::DuplicateMember => Deny::Malformed("duplicate member name in the claims"),
            JsonError::Invalid => Deny::Malformed("claims are not a JSON object"),
        })?;
        let iss = match payload.get("iss") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(Deny::InvalidClaim("iss")),
        };
        Ok(Jws {
            alg,
            kid,
            typ,
            signing_input,
            signature,
            iss,
            payload,
        })
    }

    /// Checks the claims of a token whose signature is already verified (RFC 7519 §4.1, §7.2).
    pub fn check_claims(self, issuer: &Issuer, now: f64) -> Result<Claims, Deny> {
        self.check_claims_for(issuer, &issuer.audiences, now)
    }

    /// As [`Jws::check_claims`], accepting `audiences` (a route may override the issuer's).
    pub fn check_claims_for(
        self,
        issuer: &Issuer,
        audiences: &[String],
        now: f64,
    ) -> Result<Claims, Deny> {
        let claims = self.into_claims(issuer, now)?;
        check_audience(&claims, issuer, audiences)?;
        Ok(claims)
    }

    /// The checks that do not depend on the route: lifetime and claim types (RFC 7519 §4.1).
    /// Their result may be cached for the token's lifetime; see [`check_expiry`].
    pub fn into_claims(self, issuer: &Issuer, now: f64) -> Result<Claims, Deny> {
        let leeway = issuer.leeway.as_secs_f64();
        let p = &self.payload;
        // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`. Required here
        // (RFC 9068 §2.2).
        let exp = p
            .get("exp")
            .and_then(claims::numeric_date)
            .ok_or(Deny::InvalidClaim("exp"))?;
        if now >= exp + leeway {
            return Err(Deny::Expired);
        }
        // RFC 7519 §4.1.5
        if let Some(nbf) = p.get("nbf") {
            let nbf = claims::numeric_date(nbf).ok_or(Deny::InvalidClaim("nbf"))?;
            if now + leeway < nbf {
                return Err(Deny::NotYetValid);
            }
        }
        if let Some(iat) = p.get("iat") {
            claims::numeric_date(iat).ok_or(Deny::InvalidClaim("iat"))?;
        }
        let sub = optional_string(p, "sub").map_err(|_| Deny::InvalidClaim("sub"))?;
        Ok(Claims {
            iss: self.iss,
            sub,
            exp,
            all: self.payload,
        })
    }
}

/// `exp` again, for a token verified earlier (a cached verification).
pub fn check_expiry(claims: &Claims, issuer: &Issuer, now: f64) -> Result<(), Deny> {
    if now >= claims.exp + issuer.leeway.as_secs_f64() {
        return Err(Deny::Expired);
    }
    Ok(())
}

/// RFC 7519 §4.1.3, RFC 9068 §4: the audience must contain one of this resource's identifiers.
/// Providers that put the audience elsewhere (Cognito: `client_id`) name that claim in
/// `audience_claims`; the first one present is used.
pub fn check_audience(claims: &Claims, issuer: &Issuer, audiences: &[String]) -> Result<(), Deny> {
    let value = issuer
        .audience_claims
        .iter()
        .find_map(|c| claims.all.get(c.as_str()))
        .ok_or_else(|| Deny::NoAudience {
            claims: issuer.audience_claims.clone(),
        })?;
    let auds = claims::audiences(value).ok_or(Deny::InvalidClaim("aud"))?;
    if !auds.iter().any(|a| audiences.iter().any(|want| want == a)) {
        return Err(Deny::BadAudience);
    }
    Ok(())
}

/// The exact signature length of algorithms whose signatures have one (RSA depends on the key).
fn fixed_signature_len(alg: Alg) -> Option<usize> {
    match alg {
        Alg::ES256 | Alg::EdDSA => Some(64),
        Alg::ES384 => Some(96),
        _ => None,
    }
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

/// Seconds since the Unix epoch, as a float (NumericDate may be fractional).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
