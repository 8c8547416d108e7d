//! Finds the bearer token in a request (RFC 6750 §2.1). The `Authorization` header's scheme is
//! case-insensitive (RFC 9110 §11.1), followed by one or more spaces and a token68; anything else
//! after the token makes the request malformed rather than guessing.

use super::{
    request::{AuthzRequest, HeaderValue},
    Deny,
};

/// Where a token may be found, in the order configured (`token_sources:`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Authorization,
    /// A custom header, e.g. `X-Access-Token: <token>` or with a `prefix` such as `Token `.
    Header {
        name: String,
        #[serde(default)]
        prefix: Option<String>,
    },
    /// A cookie holding the token.
    Cookie { name: String },
    /// A query parameter (RFC 6750 §2.3: `access_token`); removed before the request goes upstream.
    Query {
        #[serde(default = "default_query_name")]
        name: String,
    },
}

fn default_query_name() -> String {
    "access_token".into()
}

impl TokenSource {
    /// In words, with config spellings (for `check-config`).
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Authorization => "authorization".into(),
            TokenSource::Header { name, prefix: None } => format!("header {name}"),
            TokenSource::Header {
                name,
                prefix: Some(p),
            } => format!("header {name} (prefix {p:?})"),
            TokenSource::Cookie { name } => format!("cookie {name}"),
            TokenSource::Query { name } => format!("query {name}"),
        }
    }

    /// RFC 9728 §2 `bearer_methods_supported` value, if the method is a standard one.
    pub fn bearer_method(&self) -> Option<&'static str> {
        match self {
            TokenSource::Authorization | TokenSource::Header { .. } => Some("header"),
            TokenSource::Query { .. } => Some("query"),
            TokenSource::Cookie { .. } => None,
        }
    }
}

/// A token and where it came from. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub token: std::borrow::Cow<'a, str>,
    /// The query parameter that carried it, to remove before forwarding.
    pub query_param: Option<&'a str>,
}

impl std::fmt::Debug for Found<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("token", &"<redacted>")
            .field("query_param", &self.query_param)
            .finish()
    }
}

/// Looks in every configured source. Exactly one token may be presented: RFC 6750 §2 says a
/// client must not use more than one method, and two tokens are refused rather than guessed.
pub fn find<'a, 's>(req: &AuthzRequest<'a>, sources: &'s [TokenSource]) -> Result<Found<'a>, Deny>
where
    's: 'a,
{
    let mut found: Option<Found<'a>> = None;
    for source in sources {
        let hit = match source {
            TokenSource::Authorization => match extract(req) {
                Ok(t) => Some(Found {
                    token: t.into(),
                    query_param: None,
                }),
                Err(Deny::MissingToken) => None,
                Err(other) => return Err(other),
            },
            TokenSource::Header { name, prefix } => header_token(req, name, prefix.as_deref())?,
            TokenSource::Cookie { name } => cookie_token(req, name)?,
            TokenSource::Query { name } => query_token(req.path, name)?,
        };
        if let Some(hit) = hit {
            if found.is_some() {
                return Err(Deny::InvalidRequest("more than one token in the request"));
            }
            found = Some(hit);
        }
    }
    found.ok_or(Deny::MissingToken)
}

fn single<'a>(req: &AuthzRequest<'a>, name: &str) -> Result<Option<&'a str>, Deny> {
    match req.headers.get(name) {
        None => Ok(None),
        Some(HeaderValue::One(v)) => Ok(Some(v)),
        Some(HeaderValue::Many) => Err(Deny::InvalidRequest("a token header is repeated")),
        Some(HeaderValue::Invalid) => {
            Err(Deny::InvalidRequest("a token header is not visible ASCII"))
        }
    }
}

fn header_token<'a>(
    req: &AuthzRequest<'a>,
    name: &str,
    prefix: Option<&str>,
) -> Result<Option<Found<'a>>, Deny> {
    let Some(value) = single(req, &name.to_ascii_lowercase())? else {
        return Ok(None);
    };
    let token = match prefix {
        None => value.trim(),
        Some(p) => match value.get(..p.len()) {
            Some(head) if head.eq_ignore_ascii_case(p) => value[p.len()..].trim(),
            _ => {
                return Err(Deny::InvalidRequest(
                    "the token header lacks its expected prefix",
                ))
            }
        },
    };
    if token.is_empty() || !is_token68(token) {
        return Err(Deny::InvalidRequest(
            "the token header does not hold exactly one token",
        ));
    }
    Ok(Some(Found {
        token: token.into(),
        query_param: None,
    }))
}

fn cookie_token<'a>(req: &AuthzRequest<'a>, name: &str) -> Result<Option<Found<'a>>, Deny> {
    let Some(header) = single(req, "cookie")? else {
        return Ok(None);
    };
    let mut hit = None;
    // RFC 6265 §4.2.1: cookie-pair *( ";" SP cookie-pair ); tolerate missing spaces. Envoy joins
    // several Cookie headers with "; ".
    for pair in header.split(';') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        if k != name {
            continue;
        }
        if hit.is_some() {
            return Err(Deny::InvalidRequest("the token cookie is repeated"));
        }
        let v = v.trim_matches('"');
        if v.is_empty() || !is_token68(v) {
            return Err(Deny::InvalidRequest(
                "the token cookie does not hold a token",
            ));
        }
        hit = Some(v);
    }
    Ok(hit.map(|t| Found {
        token: t.into(),
        query_param: None,
    }))
}

fn query_token<'a, 's>(path: &'a str, name: &'s str) -> Result<Option<Found<'a>>, Deny>
where
    's: 'a,
{
    let Some((_, query)) = path.split_once('?') else {
        return Ok(None);
    };
    let mut hit = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != name {
            continue;
        }
        if hit.is_some() {
            return Err(Deny::InvalidRequest(
                "the token query parameter is repeated",
            ));
        }
        if v.is_empty() || !is_token68(&v) {
            return Err(Deny::InvalidRequest(
                "the token query parameter does not hold a token",
            ));
        }
        hit = Some(v.into_owned());
    }
    Ok(hit.map(|t| Found {
        token: t.into(),
        query_param: Some(name),
    }))
}

/// The token, borrowed from the `Authorization` header.
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
    // A lookup table: this runs on every request over ~1 KiB of token.
    const TOKEN68: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            b += 1;
        }
        t
    };
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| TOKEN68[b as usize])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::authz::request::Headers;

    fn req<'a>(headers: &'a HashMap<String, String>, path: &'a str) -> AuthzRequest<'a> {
        AuthzRequest {
            method: "GET",
            host: "h",
            path,
            headers: Headers::Map(headers),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn all_sources() -> Vec<TokenSource> {
        vec![
            TokenSource::Authorization,
            TokenSource::Header {
                name: "X-Token".into(),
                prefix: Some("Token ".into()),
            },
            TokenSource::Cookie { name: "at".into() },
            TokenSource::Query {
                name: "access_token".into(),
            },
        ]
    }

    #[test]
    fn finds_the_token_in_each_source() {
        let s = all_sources();
        let h = map(&[("authorization", "Bearer aaa")]);
        assert_eq!(find(&req(&h, "/"), &s).unwrap().token, "aaa");
        let h = map(&[("x-token", "token bbb")]);
        assert_eq!(find(&req(&h, "/"), &s).unwrap().token, "bbb");
        let h = map(&[("cookie", "theme=dark; at=ccc; x=1")]);
        assert_eq!(find(&req(&h, "/"), &s).unwrap().token, "ccc");
        let h = map(&[]);
        let f = find(&req(&h, "/p?a=1&access_token=ddd"), &s).unwrap();
        assert_eq!(
            (f.token.as_ref(), f.query_param),
            ("ddd", Some("access_token"))
        );
    }

    #[test]
    fn two_tokens_are_an_invalid_request() {
        let s = all_sources();
        let h = map(&[("authorization", "Bearer aaa"), ("cookie", "at=bbb")]);
        assert!(matches!(
            find(&req(&h, "/"), &s),
            Err(Deny::InvalidRequest(_))
        ));
        let h = map(&[]);
        assert!(matches!(
            find(&req(&h, "/?access_token=a&access_token=b"), &s),
            Err(Deny::InvalidRequest(_))
        ));
    }

    #[test]
    fn unconfigured_sources_are_ignored() {
        let s = vec![TokenSource::Authorization];
        let h = map(&[("cookie", "at=bbb")]);
        assert_eq!(
            find(&req(&h, "/?access_token=x"), &s),
            Err(Deny::MissingToken)
        );
    }

    #[test]
    fn header_prefix_is_enforced() {
        let s = all_sources();
        let h = map(&[("x-token", "Bearer bbb")]);
        assert!(matches!(
            find(&req(&h, "/"), &s),
            Err(Deny::InvalidRequest(_))
        ));
    }

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
