//! The one place where a pipeline result becomes a response: HTTP status, gRPC status code,
//! RFC 6750 §3 `WWW-Authenticate` challenge, JSON body, and the headers set on the upstream
//! request. Front ends translate this into their wire format and nothing else.

use std::sync::{Arc, OnceLock};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::Value;

use super::{claims::Claims, resource::ResourceMetadata, Deny, Grant};
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

/// What an allowed request tells the upstream about its caller. It depends only on the verified
/// token and the configuration, so it is built once per token and cached with it; every allow
/// then shares it.
#[derive(Debug, Default)]
pub struct Identity {
    /// Headers set, replacing any client-sent value.
    pub set: Vec<(String, String)>,
    /// Headers removed (client-sent identity headers jwt-authz has no value for, `authorization`
    /// if so configured).
    pub remove: Vec<String>,
    /// Envoy dynamic metadata (see [`super::metadata`]): the encoded `Struct` fields
    /// `{issuer, subject, scopes, claims}`; none on anonymous routes.
    pub metadata: Option<Box<[u8]>>,
    /// The gRPC front end's encoding of `set` and `remove`, made on its first use (front ends
    /// that never need it leave it empty).
    pub wire: OnceLock<Box<[u8]>>,
}

impl Identity {
    /// Heap bytes held, roughly (for the token cache's memory bound).
    pub fn heap_size(&self) -> usize {
        let headers = self
            .set
            .iter()
            .map(|(k, v)| 48 + k.len() + v.len())
            .chain(self.remove.iter().map(|s| 24 + s.len()))
            .sum::<usize>();
        // `wire` encodes the same headers; count it before it is made, too.
        headers
            + self.metadata.as_ref().map_or(0, |m| m.len())
            + self.wire.get().map_or(headers, |w| w.len())
    }
}

/// An allowed request's changes to the upstream request.
#[derive(Debug, Clone)]
pub struct Allowance {
    pub identity: Arc<Identity>,
    /// The rule that matched (Envoy dynamic metadata `route`).
    pub route: String,
    /// Query parameters to remove (a token sent in the query, RFC 6750 §2.3).
    pub remove_query: Vec<String>,
}

/// Response settings, built from the configuration.
#[derive(Debug, Clone)]
pub struct Responder {
    realm: String,
    headers: UpstreamHeaders,
    metadata_key: Arc<str>,
    metadata_claims: super::metadata::MetadataClaims,
    resource: Option<ResourceMetadata>,
    /// The identity of every request on an anonymous route: none, and no client-made one either.
    anonymous: Arc<Identity>,
}

impl Responder {
    pub fn new(
        realm: String,
        headers: UpstreamHeaders,
        metadata_key: String,
        resource: Option<ResourceMetadata>,
    ) -> Self {
        let mut responder = Self {
            realm,
            headers,
            metadata_key: metadata_key.into(),
            metadata_claims: Default::default(),
            resource,
            anonymous: Arc::default(),
        };
        responder.anonymous = Arc::new(Identity {
            remove: responder
                .identity_headers()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            ..Identity::default()
        });
        responder
    }

    /// Which claims the metadata carries (default: all).
    pub fn with_metadata_claims(mut self, published: super::metadata::MetadataClaims) -> Self {
        self.metadata_claims = published;
        self
    }

    /// The `dynamic_metadata` key under which [`Identity::metadata`] is published.
    pub fn metadata_key(&self) -> &Arc<str> {
        &self.metadata_key
    }

    /// Every header name jwt-authz may set upstream (front ends strip client copies of these).
    pub fn identity_headers(&self) -> Vec<&str> {
        let mut h = vec![self.headers.subject.as_str(), self.headers.issuer.as_str()];
        h.extend(self.headers.claims.iter().map(|c| c.header.as_str()));
        h.extend(self.headers.payload.as_deref());
        h
    }

    /// The RFC 9728 document, if configured.
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.resource.as_ref()
    }

    /// The direct response serving the RFC 9728 document (front ends answer it themselves).
    pub fn metadata_document(&self) -> Option<Denial> {
        let doc = self.resource.as_ref()?;
        Some(Denial {
            http_status: 200,
            // Non-OK, so that Envoy sends this response instead of forwarding the request.
            rpc_code: rpc::PERMISSION_DENIED,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "max-age=300".to_owned()),
            ],
            body: doc.body.clone(),
        })
    }

    /// Headers and metadata for the upstream request of an allowed check.
    pub fn allow(&self, grant: &Grant) -> Allowance {
        Allowance {
            identity: grant
                .verified
                .as_ref()
                .map_or_else(|| self.anonymous.clone(), |v| v.identity.clone()),
            route: grant.route.clone(),
            remove_query: grant.query_param.iter().cloned().collect(),
        }
    }

    /// What an allowed request with these verified claims tells the upstream; built once per
    /// token (see [`Identity`]).
    pub fn identity(&self, claims: &Claims) -> Identity {
        let mut id = Identity::default();
        let mut put = |name: &str, value: Option<String>| match value {
            Some(v) => id.set.push((name.to_owned(), v)),
            None => id.remove.push(name.to_owned()),
        };
        put(
            &self.headers.subject,
            claims.sub.clone().filter(|s| header_safe(s)),
        );
        put(
            &self.headers.issuer,
            Some(claims.iss.clone()).filter(|s| header_safe(s)),
        );
        for c in &self.headers.claims {
            let value = if c.claim.starts_with('/') {
                super::policy::pointer(&claims.all, &c.claim)
            } else {
                claims.all.get(&c.claim)
            };
            put(&c.header, value.and_then(header_value));
        }
        if let Some(name) = &self.headers.payload {
            let json = Value::Object(claims.all.clone()).to_string();
            put(name, Some(URL_SAFE_NO_PAD.encode(json)));
        }
        if self.headers.remove_authorization {
            id.remove.push("authorization".to_owned());
        }
        id.metadata = Some(super::metadata::fields(claims, &self.metadata_claims));
        id
    }

    /// The response for a denial: status per RFC 6750 §3.1, challenge per §3 and RFC 9728 §5.1.
    pub fn deny(&self, deny: &Deny) -> Denial {
        let (http_status, rpc_code, error) = match deny {
            Deny::MissingToken => (401, rpc::UNAUTHENTICATED, None),
            Deny::InvalidRequest(_) => (400, rpc::INVALID_ARGUMENT, Some("invalid_request")),
            Deny::KeysUnavailable => (503, rpc::UNAVAILABLE, None),
            Deny::InsufficientScope { .. } => {
                (403, rpc::PERMISSION_DENIED, Some("insufficient_scope"))
            }
            Deny::Forbidden { .. } => (403, rpc::PERMISSION_DENIED, None),
            Deny::Malformed(_)
            | Deny::UnsupportedAlg
            | Deny::UnknownIssuer
            | Deny::IssuerNotAllowed
            | Deny::UnknownKey
            | Deny::KeyAlgMismatch
            | Deny::BadSignature
            | Deny::Expired
            | Deny::NotYetValid
            | Deny::BadAudience
            | Deny::InvalidClaim(_)
            | Deny::NotAnAccessToken { .. }
            | Deny::ProfileClaim(_)
            | Deny::NoAudience { .. }
            | Deny::RequiredClaim { .. }
            | Deny::IdToken => (401, rpc::UNAUTHENTICATED, Some("invalid_token")),
        };
        let description = deny.description();
        let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
        if let Some(error) = error {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quote_safe(&description)
            ));
        }
        if let Deny::InsufficientScope { required } = deny {
            // RFC 6750 §3: the scope necessary to access the resource.
            challenge.push_str(&format!(", scope=\"{}\"", quote_safe(required)));
        }
        if let Some(doc) = &self.resource {
            challenge.push_str(&format!(", resource_metadata=\"{}\"", doc.url));
        }
        let body = serde_json::json!({
            "error": error.unwrap_or(match http_status {
                503 => "temporarily_unavailable",
                403 => "forbidden",
                _ => "unauthorized",
            }),
            "error_description": description,
        })
        .to_string();
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if matches!(http_status, 400 | 401 | 403) {
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

/// How a claim value is written into a header: strings as they are, numbers and booleans as
/// JSON, arrays of those joined with `,`, objects as base64url(JSON). Values that are not
/// visible ASCII (or arrays with an element containing `,`) are left out: no header injection.
pub fn header_value(v: &Value) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let out = match v {
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| scalar(i).filter(|s| !s.contains(',')))
                .collect();
            parts?.join(",")
        }
        Value::Object(_) => URL_SAFE_NO_PAD.encode(v.to_string()),
        Value::Null => return None,
        other => scalar(other)?,
    };
    header_safe(&out).then_some(out)
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
    !s.is_empty() && s.len() <= 8192 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> Responder {
        Responder::new(
            "api".into(),
            UpstreamHeaders::default(),
            "jwt_authz".into(),
            None,
        )
    }

    #[test]
    fn insufficient_scope_is_403_naming_the_scope() {
        let d = responder().deny(&Deny::InsufficientScope {
            required: "orders:write".into(),
        });
        assert_eq!(d.http_status, 403);
        assert_eq!(
            header(&d, "www-authenticate"),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks the scope this resource requires (orders:write)\", scope=\"orders:write\"")
        );
    }

    #[test]
    fn claim_values_are_encoded_predictably() {
        use serde_json::json;
        assert_eq!(header_value(&json!("a b")), Some("a b".into()));
        assert_eq!(header_value(&json!(42)), Some("42".into()));
        assert_eq!(header_value(&json!(true)), Some("true".into()));
        assert_eq!(header_value(&json!(["a", "b", 3])), Some("a,b,3".into()));
        assert_eq!(header_value(&json!(["a,b"])), None);
        assert_eq!(header_value(&json!({"k": 1})), Some("eyJrIjoxfQ".into()));
        assert_eq!(header_value(&json!("line\r\nX-Evil: 1")), None);
        assert_eq!(header_value(&json!(null)), None);
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
