//! Finds the bearer token in a request (RFC 6750 §2.1). The `Authorization` header's scheme is
//! case-insensitive (RFC 9110 §11.1), followed by one or more spaces and a token68; anything else
//! after the token makes the request malformed rather than guessing.

use super::{
    request::{AuthzRequest, HeaderValue},
    Deny,
};

/// The token, borrowed from the request.
pub fn extract<'a>(req: &AuthzRequest<'a>) -> Result<&'a str, Deny> {
    match req.headers.get("authorization") {
        None => Err(Deny::MissingToken),
        Some(HeaderValue::Many) => Err(Deny::InvalidRequest("more than one Authorization header")),
        Some(HeaderValue::Invalid) => Err(Deny::InvalidRequest(
            "the Authorization header is not visible ASCII",
        )),
        Some(HeaderValue::One(value)) => bearer(value),
    }
}

/// Parses `Bearer <token68>`.
pub fn bearer(value: &str) -> Result<&str, Deny> {
    let (scheme, rest) = match value.split_once(' ') {
        Some(parts) => parts,
        None if value.eq_ignore_ascii_case("bearer") => {
            return Err(Deny::InvalidRequest("the Bearer credentials are empty"))
        }
        // A single word is another scheme's bare credentials, not a bearer token.
        None => return Err(Deny::MissingToken),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, DPoP, …): no bearer token was presented.
        return Err(Deny::MissingToken);
    }
    let token = rest.trim_start_matches(' ').trim_end_matches(' ');
    if token.is_empty() {
        return Err(Deny::InvalidRequest("the Bearer credentials are empty"));
    }
    if !is_token68(token) {
        return Err(Deny::InvalidRequest(
            "the Authorization header must be `Bearer` followed by exactly one token",
        ));
    }
    Ok(token)
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 9110 §11.2).
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive_and_spaces_may_repeat() {
        assert_eq!(bearer("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer("bearer abc"), Ok("abc"));
        assert_eq!(bearer("BEARER    abc"), Ok("abc"));
    }

    #[test]
    fn other_schemes_mean_no_token() {
        assert_eq!(bearer("Basic dXNlcjpwdw=="), Err(Deny::MissingToken));
        assert_eq!(bearer("DPoP abc"), Err(Deny::MissingToken));
    }

    #[test]
    fn anything_after_the_token_is_rejected() {
        assert!(matches!(
            bearer("Bearer abc def"),
            Err(Deny::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer("Bearer abc,Bearer def"),
            Err(Deny::InvalidRequest(_))
        ));
        assert!(matches!(bearer("Bearer "), Err(Deny::InvalidRequest(_))));
        assert!(matches!(bearer("Bearer"), Err(Deny::InvalidRequest(_))));
    }

    #[test]
    fn padding_only_at_the_end() {
        assert_eq!(bearer("Bearer abc=="), Ok("abc=="));
        assert!(matches!(
            bearer("Bearer a=bc"),
            Err(Deny::InvalidRequest(_))
        ));
    }
}
