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
    /// The issuer is configured but the matched route does not accept it.
    IssuerNotAllowed,
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
    /// `typ` is not `at+jwt` under the RFC 9068 profile (the sanitised `typ` seen, if any).
    NotAnAccessToken {
        typ: Option<String>,
    },
    /// A claim RFC 9068 §2.2 requires is missing.
    ProfileClaim(&'static str),
    /// None of the issuer's `audience_claims` is present.
    NoAudience {
        claims: Vec<String>,
    },
    /// A claim of the issuer's `required_claims` is missing or has another value.
    RequiredClaim {
        name: String,
    },
    /// An OpenID Connect ID token presented as an access token.
    IdToken,
    /// Valid token, but without the scopes the route requires (403, RFC 6750 §3.1).
    InsufficientScope {
        required: String,
    },
    /// Valid token, but the route's claim conditions do not hold, or the route denies (403).
    Forbidden {
        rule: String,
    },
    /// The issuer's keys could not be loaded, or are too stale to trust (503, fail closed).
    KeysUnavailable,
}

impl Deny {
    /// Every variant's label, for pre-building metric handles.
    pub const LABELS: [&'static str; 19] = [
        "missing_token",
        "invalid_request",
        "malformed",
        "unsupported_alg",
        "unknown_issuer",
        "issuer_not_allowed",
        "unknown_kid",
        "key_alg_mismatch",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "bad_audience",
        "invalid_claim",
        "not_an_access_token",
        "profile_claim_missing",
        "id_token",
        "insufficient_scope",
        "forbidden",
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
            Deny::IssuerNotAllowed => 5,
            Deny::UnknownKey => 6,
            Deny::KeyAlgMismatch => 7,
            Deny::BadSignature => 8,
            Deny::Expired => 9,
            Deny::NotYetValid => 10,
            Deny::BadAudience => 11,
            Deny::InvalidClaim(_) => 12,
            Deny::NotAnAccessToken { .. } => 13,
            Deny::ProfileClaim(_) => 14,
            // Counted with the other claim failures (the label set stays small and stable).
            Deny::NoAudience { .. } | Deny::RequiredClaim { .. } => 12,
            Deny::IdToken => 15,
            Deny::InsufficientScope { .. } => 16,
            Deny::Forbidden { .. } => 17,
            Deny::KeysUnavailable => 18,
        }
    }

    /// The metric label (`reason`).
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// Human-readable and safe for `error_description` (RFC 6750 §3: printable ASCII, no quotes).
    /// Where a per-issuer setting would accept the token, the description names it.
    pub fn description(&self) -> String {
        match self {
            Deny::MissingToken => "no bearer token in the request".into(),
            Deny::InvalidRequest(why) => (*why).into(),
            Deny::Malformed(why) => format!("malformed token: {why}"),
            Deny::UnsupportedAlg => "the token's signing algorithm is not accepted".into(),
            Deny::UnknownIssuer => "the token's issuer is not trusted".into(),
            Deny::IssuerNotAllowed => "the token's issuer is not accepted on this route".into(),
            Deny::UnknownKey => "the token's signing key is not known to the issuer".into(),
            Deny::KeyAlgMismatch => "the token's algorithm does not match its key".into(),
            Deny::BadSignature => "the token's signature is invalid".into(),
            Deny::Expired => "the token has expired".into(),
            Deny::NotYetValid => "the token is not valid yet (nbf)".into(),
            Deny::BadAudience => "the token is not intended for this audience".into(),
            Deny::InvalidClaim(which) => format!("the token's {which} claim is missing or invalid"),
            Deny::NotAnAccessToken { typ } => format!(
                "the token's typ is {}, not at+jwt (RFC 9068 2.1); if this issuer issues plain JWT access tokens, set profile: legacy on it",
                typ.as_deref().map_or("absent".to_owned(), |t| format!("'{t}'"))
            ),
            Deny::ProfileClaim(name) => format!(
                "the token lacks the {name} claim RFC 9068 requires; if this issuer does not issue RFC 9068 tokens, set profile: legacy on it"
            ),
            Deny::NoAudience { claims } => format!(
                "the token has none of the audience claims [{}]; if this issuer puts the audience in another claim, set audience_claims on it",
                claims.join(", ")
            ),
            Deny::RequiredClaim { name } => format!(
                "the token's {name} claim does not have the value this issuer's required_claims demand"
            ),
            Deny::IdToken => "an ID token is not an access token (if this issuer puts one of its id_token_claims in access tokens, adjust id_token_claims)".into(),
            Deny::InsufficientScope { required } => {
                format!("the token lacks the scope this resource requires ({required})")
            }
            Deny::Forbidden { rule } => format!("the token does not satisfy the rule {rule}"),
            Deny::KeysUnavailable => "the issuer's signing keys are unavailable".into(),
        }
    }
}
