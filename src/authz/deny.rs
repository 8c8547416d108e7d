//! Why a request is denied. Every step of the pipeline yields one of these; `respond.rs` is the
//! only place that turns them into status codes and challenges.

/// A denial, with a bounded metric label and a description safe to send to the client
/// (it never echoes the token or claim values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    /// No credentials at all (RFC 6750 §3.1: challenge without an error code).
    MissingToken,
    /// The request is malformed, e.g. a broken `Authorization` header or several tokens (400).
    InvalidRequest(&'static str),
    /// The token is not a well-formed JWS compact serialization or its JSON is invalid.
    Malformed(&'static str),
    /// `alg` is `none`, HMAC, unknown, or not allowed for the issuer (RFC 8725 §3.1).
    UnsupportedAlg,
    /// `iss` names no configured issuer.
    UnknownIssuer,
    /// No key with the token's `kid`, even after a refetch (or during the refetch cooldown).
    UnknownKey,
    /// The `kid` exists but its key is for another algorithm (RFC 8725 §3.1).
    KeyAlgMismatch,
    BadSignature,
    Expired,
    NotYetValid,
    BadAudience,
    /// A required claim is missing or has the wrong JSON type.
    InvalidClaim(&'static str),
    /// The issuer's keys could not be loaded, or are too stale to trust (503, fail closed).
    KeysUnavailable,
}

impl Deny {
    /// Every variant, for pre-building metric handles.
    pub const LABELS: [&'static str; 13] = [
        "missing_token",
        "invalid_request",
        "malformed",
        "unsupported_alg",
        "unknown_issuer",
        "unknown_kid",
        "key_alg_mismatch",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "bad_audience",
        "invalid_claim",
        "keys_unavailable",
    ];

    /// Index into [`Deny::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            Deny::MissingToken => 0,
            Deny::InvalidRequest(_) => 1,
            Deny::Malformed(_) => 2,
            Deny::UnsupportedAlg => 3,
            Deny::UnknownIssuer => 4,
            Deny::UnknownKey => 5,
            Deny::KeyAlgMismatch => 6,
            Deny::BadSignature => 7,
            Deny::Expired => 8,
            Deny::NotYetValid => 9,
            Deny::BadAudience => 10,
            Deny::InvalidClaim(_) => 11,
            Deny::KeysUnavailable => 12,
        }
    }

    /// The metric label (`reason`).
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// Human-readable and safe for `error_description` (RFC 6750 §3: printable ASCII, no quotes).
    pub fn description(&self) -> String {
        match self {
            Deny::MissingToken => "no bearer token in the request".into(),
            Deny::InvalidRequest(why) => (*why).into(),
            Deny::Malformed(why) => format!("malformed token: {why}"),
            Deny::UnsupportedAlg => "the token's signing algorithm is not accepted".into(),
            Deny::UnknownIssuer => "the token's issuer is not trusted".into(),
            Deny::UnknownKey => "the token's signing key is not known to the issuer".into(),
            Deny::KeyAlgMismatch => "the token's algorithm does not match its key".into(),
            Deny::BadSignature => "the token's signature is invalid".into(),
            Deny::Expired => "the token has expired".into(),
            Deny::NotYetValid => "the token is not valid yet (nbf)".into(),
            Deny::BadAudience => "the token is not intended for this audience".into(),
            Deny::InvalidClaim(which) => format!("the token's {which} claim is missing or invalid"),
            Deny::KeysUnavailable => "the issuer's signing keys are unavailable".into(),
        }
    }
}
