//! The one place where a pipeline result becomes a response: HTTP status, gRPC status code,
//! RFC 6750 §3 `WWW-Authenticate` challenge, JSON body, and the headers set on the upstream
//! request. Front ends translate this into their wire format and nothing else.

use super::{Deny, Grant};
use crate::config::UpstreamHeaders;

/// gRPC status codes used in `CheckResponse.status` (google.rpc.Code).
pub mod rpc {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// A denied request's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub http_status: u16,
    pub rpc_code: i32,
    /// Response headers, including `www-authenticate` and `content-type`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// An allowed request's changes to the upstream request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowance {
    /// Set, replacing any client-sent value.
    pub set: Vec<(String, String)>,
    /// Removed (client-sent identity headers jwt-authz has no value for).
    pub remove: Vec<String>,
}

/// Static response settings.
#[derive(Debug, Clone)]
pub struct Responder {
    realm: String,
    headers: UpstreamHeaders,
}

impl Responder {
    pub fn new(realm: String, headers: UpstreamHeaders) -> Self {
        Self { realm, headers }
    }

    /// Every header name jwt-authz may set upstream (front ends strip client copies of these).
    pub fn identity_headers(&self) -> [&str; 2] {
        [&self.headers.subject, &self.headers.issuer]
    }

    /// Headers for the upstream request of an allowed check.
    pub fn allow(&self, grant: &Grant) -> Allowance {
        let mut a = Allowance::default();
        match &grant.claims.sub {
            Some(sub) if header_safe(sub) => {
                a.set.push((self.headers.subject.clone(), sub.clone()))
            }
            _ => a.remove.push(self.headers.subject.clone()),
        }
        a.set
            .push((self.headers.issuer.clone(), grant.claims.iss.clone()));
        a
    }

    /// The response for a denial: status per RFC 6750 §3.1, challenge per §3.
    pub fn deny(&self, deny: &Deny) -> Denial {
        let (http_status, rpc_code, error) = match deny {
            Deny::MissingToken => (401, rpc::UNAUTHENTICATED, None),
            Deny::InvalidRequest(_) => (400, rpc::INVALID_ARGUMENT, Some("invalid_request")),
            Deny::KeysUnavailable => (503, rpc::UNAVAILABLE, None),
            Deny::Malformed(_)
            | Deny::UnsupportedAlg
            | Deny::UnknownIssuer
            | Deny::UnknownKey
            | Deny::KeyAlgMismatch
            | Deny::BadSignature
            | Deny::Expired
            | Deny::NotYetValid
            | Deny::BadAudience
            | Deny::InvalidClaim(_) => (401, rpc::UNAUTHENTICATED, Some("invalid_token")),
        };
        let description = deny.description();
        let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
        if let Some(error) = error {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quote_safe(&description)
            ));
        }
        let body = serde_json::json!({
            "error": error.unwrap_or(if http_status == 503 { "temporarily_unavailable" } else { "unauthorized" }),
            "error_description": description,
        })
        .to_string();
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if http_status == 401 || http_status == 400 {
            headers.push(("www-authenticate", challenge));
        }
        if http_status == 503 {
            headers.push(("retry-after", "5".to_owned()));
        }
        Denial {
            http_status,
            rpc_code,
            headers,
            body,
        }
    }
}

/// RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no `"` or `\`).
fn quote_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

/// A claim value can go in a header only if it is visible ASCII (no CR/LF injection).
fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> Responder {
        Responder::new("api".into(), UpstreamHeaders::default())
    }

    fn header<'a>(d: &'a Denial, name: &str) -> Option<&'a str> {
        d.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_token_is_a_bare_challenge() {
        let d = responder().deny(&Deny::MissingToken);
        assert_eq!(d.http_status, 401);
        assert_eq!(d.rpc_code, rpc::UNAUTHENTICATED);
        assert_eq!(header(&d, "www-authenticate"), Some("Bearer realm=\"api\""));
    }

    #[test]
    fn invalid_token_carries_error_and_description() {
        let d = responder().deny(&Deny::Expired);
        assert_eq!(d.http_status, 401);
        assert_eq!(
            header(&d, "www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"")
        );
    }

    #[test]
    fn malformed_header_is_400_invalid_request() {
        let d = responder().deny(&Deny::InvalidRequest("x"));
        assert_eq!(d.http_status, 400);
        assert!(header(&d, "www-authenticate")
            .unwrap()
            .contains("error=\"invalid_request\""));
    }

    #[test]
    fn unavailable_keys_are_503_never_allow() {
        let d = responder().deny(&Deny::KeysUnavailable);
        assert_eq!(d.http_status, 503);
        assert_eq!(d.rpc_code, rpc::UNAVAILABLE);
    }

    #[test]
    fn descriptions_never_contain_quotes() {
        assert_eq!(quote_safe("a\"b\\c\n"), "a'b'c?");
    }
}
