//! The JWT access token profile (RFC 9068): an access token says so in its header
//! (`typ: at+jwt`, §2.1) and carries `iss exp aud sub client_id iat jti` (§2.2). Per issuer it can
//! be relaxed to `legacy` for providers that issue plain JWTs as access tokens (e.g. Keycloak);
//! ID tokens are refused either way (§4: an ID token is not an access token).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Deny;

/// `profile:` of an issuer.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// RFC 9068: `typ` must be `at+jwt` and the profile's claims are required.
    #[default]
    Rfc9068,
    /// Any `typ`; only `exp` and the audience are required.
    Legacy,
}

impl Profile {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Rfc9068 => "rfc9068",
            Profile::Legacy => "legacy",
        }
    }
}

/// RFC 9068 §2.2 required claims (besides `exp`/`aud`, checked by every profile).
const REQUIRED: [&str; 5] = ["iss", "sub", "client_id", "iat", "jti"];

/// The default claims that mark an ID token (OIDC Core §2, §3.1.3.6, §3.3.2.11).
pub const ID_TOKEN_CLAIMS: [&str; 3] = ["nonce", "at_hash", "c_hash"];

/// Checks the profile for a token whose signature and basic claims are already valid.
pub fn check(profile: Profile, typ: Option<&str>, claims: &Map<String, Value>) -> Result<(), Deny> {
    check_with(profile, typ, claims, &ID_TOKEN_CLAIMS, &Map::new())
}

/// [`check`] with an issuer's `id_token_claims` and `required_claims`.
pub fn check_with<S: AsRef<str>>(
    profile: Profile,
    typ: Option<&str>,
    claims: &Map<String, Value>,
    id_token_claims: &[S],
    required: &Map<String, Value>,
) -> Result<(), Deny> {
    // OIDC Core §2: these claims exist only in ID tokens. An ID token replayed as an access token
    // must never be accepted, whatever the profile (RFC 9068 §4, RFC 8725 §2.8).
    if id_token_claims
        .iter()
        .any(|c| claims.contains_key(c.as_ref()))
    {
        return Err(Deny::IdToken);
    }
    for (name, want) in required {
        if claims.get(name) != Some(want) {
            return Err(Deny::RequiredClaim { name: name.clone() });
        }
    }
    if profile == Profile::Legacy {
        return Ok(());
    }
    // RFC 9068 §2.1, §4: "at+jwt", or the full media type; compared case-insensitively
    // (RFC 7515 §4.1.9 / RFC 2045 media types).
    let is_at_jwt = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !is_at_jwt {
        return Err(Deny::NotAnAccessToken {
            typ: typ.map(|t| t.chars().filter(char::is_ascii_graphic).take(32).collect()),
        });
    }
    for name in REQUIRED {
        let ok = match (name, claims.get(name)) {
            (_, None) => false,
            ("iat", Some(v)) => v.is_number(),
            (_, Some(v)) => v.is_string(),
        };
        if !ok {
            return Err(Deny::ProfileClaim(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims() -> Map<String, Value> {
        json!({"iss": "i", "sub": "s", "client_id": "c", "iat": 1, "jti": "j", "aud": "a", "exp": 2})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn accepts_at_jwt_in_both_spellings_any_case() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert_eq!(
                check(Profile::Rfc9068, Some(typ), &claims()),
                Ok(()),
                "{typ}"
            );
        }
    }

    #[test]
    fn rejects_plain_jwt_type_naming_the_setting() {
        let err = check(Profile::Rfc9068, Some("JWT"), &claims()).unwrap_err();
        assert_eq!(
            err,
            Deny::NotAnAccessToken {
                typ: Some("JWT".into())
            }
        );
        assert!(
            err.description().contains("profile: legacy"),
            "{}",
            err.description()
        );
        assert!(check(Profile::Rfc9068, None, &claims()).is_err());
        assert_eq!(check(Profile::Legacy, Some("JWT"), &claims()), Ok(()));
    }

    #[test]
    fn requires_profile_claims() {
        for name in REQUIRED {
            let mut c = claims();
            c.remove(name);
            assert_eq!(
                check(Profile::Rfc9068, Some("at+jwt"), &c),
                Err(Deny::ProfileClaim(name))
            );
        }
        let mut c = claims();
        c.remove("client_id");
        assert_eq!(check(Profile::Legacy, Some("JWT"), &c), Ok(()));
    }

    #[test]
    fn id_token_claims_and_required_claims_are_per_issuer() {
        let mut c = claims();
        c.insert("nonce".into(), json!("n"));
        c.insert("token_use".into(), json!("access"));
        let none = Map::new();
        // Keycloak ≤ 24: nonce in access tokens; at_hash still marks ID tokens.
        assert_eq!(
            check_with(Profile::Legacy, None, &c, &["at_hash", "c_hash"], &none),
            Ok(())
        );
        c.insert("at_hash".into(), json!("h"));
        assert_eq!(
            check_with(Profile::Legacy, None, &c, &["at_hash", "c_hash"], &none),
            Err(Deny::IdToken)
        );
        let c = claims();
        let required = json!({"token_use": "access"}).as_object().cloned().unwrap();
        assert_eq!(
            check_with(Profile::Legacy, None, &c, &ID_TOKEN_CLAIMS, &required),
            Err(Deny::RequiredClaim {
                name: "token_use".into()
            })
        );
    }

    #[test]
    fn id_tokens_are_refused_under_every_profile() {
        let mut c = claims();
        c.insert("nonce".into(), json!("n"));
        assert_eq!(
            check(Profile::Rfc9068, Some("at+jwt"), &c),
            Err(Deny::IdToken)
        );
        assert_eq!(check(Profile::Legacy, Some("JWT"), &c), Err(Deny::IdToken));
    }
}
