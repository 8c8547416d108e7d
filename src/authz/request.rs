//! The request as the pipeline sees it: method, host, path and a header lookup. Front ends
//! (gRPC ext_authz, HTTP) build one of these; nothing below knows which protocol it came from.

use std::collections::HashMap;

/// Header storage a front end lends to the pipeline. Names are looked up lowercase.
pub enum Headers<'a> {
    /// Envoy's `attributes.request.http.headers` (keys already lowercase).
    Map(&'a HashMap<String, String>),
    /// An HTTP front end's header map.
    Http(&'a http::HeaderMap),
}

impl<'a> Headers<'a> {
    /// The value of header `name` (lowercase). Several values of one header are reported as
    /// joined by Envoy; an HTTP header map yields `None` if the header appears more than once,
    /// so that a duplicated credential is never silently picked.
    pub fn get(&self, name: &str) -> Option<HeaderValue<'a>> {
        match self {
            Headers::Map(m) => m.get(name).map(|v| HeaderValue::One(v.as_str())),
            Headers::Http(h) => {
                let mut all = h.get_all(name).iter();
                let first = all.next()?;
                if all.next().is_some() {
                    return Some(HeaderValue::Many);
                }
                Some(
                    first
                        .to_str()
                        .map_or(HeaderValue::Invalid, HeaderValue::One),
                )
            }
        }
    }
}

/// One header's value, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    One(&'a str),
    /// The header was sent more than once.
    Many,
    /// Not visible ASCII.
    Invalid,
}

/// What a check is about.
pub struct AuthzRequest<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Headers<'a>,
}

impl<'a> AuthzRequest<'a> {
    /// Envoy's `x-request-id`, for correlating logs.
    pub fn request_id(&self) -> Option<&'a str> {
        match self.headers.get("x-request-id") {
            Some(HeaderValue::One(v)) => Some(v),
            _ => None,
        }
    }
}
