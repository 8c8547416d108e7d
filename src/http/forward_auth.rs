//! The HTTP forward-auth endpoint: nginx `auth_request`, Traefik `forwardAuth` and Envoy's
//! ext_authz in HTTP service mode ask it about a request; it answers 200 (with identity headers
//! to copy upstream) or the same denial as the gRPC path. A thin adapter over the [`Authorizer`]:
//! it only works out which request is being asked about, and never reads a request body.
//!
//! [`Authorizer`]: crate::authz::Authorizer

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Deserializer};
use tokio::net::TcpListener;

use super::server;
use crate::{
    app::Shared,
    authz::{Allowance, AuthzRequest, Decision, Denial, Headers},
    metrics::Frontend,
};

/// `forward_auth:` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Listen address of the forward-auth endpoint.
    pub listen: SocketAddr,
    /// Where the method, host and URI of the request being authorized come from.
    #[serde(default)]
    pub original_request: OriginalRequest,
    /// `envoy` mode: the `http_service.path_prefix` Envoy puts before the original path; it is
    /// stripped off. Empty, or starting with `/` and not ending with one.
    #[serde(default, deserialize_with = "path_prefix")]
    pub path_prefix: String,
}

impl ForwardAuthConfig {
    /// Forward-auth on `listen`, reading the original request from `X-Forwarded-*`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            original_request: OriginalRequest::default(),
            path_prefix: String::new(),
        }
    }
}

/// How the proxy in front tells which request it is asking about. The headers are trusted, so
/// the forward-auth port must be reachable only by that proxy, and the proxy must overwrite any
/// client-sent copies (Traefik does; nginx does with the `proxy_set_header` lines in README.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginalRequest {
    /// `X-Forwarded-Method` and `X-Forwarded-Uri` (required), `X-Forwarded-Host` (else `Host`):
    /// Traefik `forwardAuth`, and nginx `auth_request` configured as README.md shows.
    #[default]
    Forwarded,
    /// `X-Original-Method` (required) and `X-Original-URL` (absolute) or `X-Original-URI`:
    /// the ingress-nginx `auth-url` convention.
    Original,
    /// This request's own method, `Host` and path minus `path_prefix`: Envoy's ext_authz
    /// filter with an `http_service`.
    Envoy,
}

fn path_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    let valid = prefix.is_empty()
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'?'));
    if valid {
        Ok(prefix)
    } else {
        Err(serde::de::Error::custom(format!(
            "path_prefix {prefix:?} must be empty or a path like /ext_authz (leading `/`, no \
             trailing `/`, no query), the same as Envoy's http_service.path_prefix"
        )))
    }
}

/// Serves forward-auth until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: ForwardAuthConfig,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let endpoint = Arc::new(Endpoint { config, shared });
    let handle = move |req: Request<Incoming>, _peer: SocketAddr| {
        let endpoint = endpoint.clone();
        async move { endpoint.check(&req).await }
    };
    server::serve(listener, "forward-auth", handle, shutdown).await
}

// === impl Endpoint ===

struct Endpoint {
    config: ForwardAuthConfig,
    shared: Arc<Shared>,
}

impl Endpoint {
    async fn check(&self, req: &Request<Incoming>) -> Response<Body> {
        let original = match self.original(req) {
            Ok(original) => original,
            // Not a forwarded check: a direct GET of the RFC 9728 document, which the proxy in
            // front routes here (a 2xx check answer would only tell the proxy to allow it).
            Err(_) if self.is_metadata_request(req) => Original {
                method: req.method().as_str(),
                host: host(req).unwrap_or(""),
                uri: req.uri().path(),
            },
            Err(why) => return misconfigured(self.config.original_request, why),
        };
        let check = AuthzRequest {
            method: original.method,
            host: original.host,
            path: original.uri,
            headers: Headers::Http(req.headers()),
        };
        let authorizer = self.shared.authorizer();
        match authorizer.decide(&check, Frontend::ForwardAuth).await {
            Decision::Allow(allowance) => allowed(
                allowance,
                self.config.original_request == OriginalRequest::Envoy,
            ),
            Decision::Deny(denial) => denied(denial),
        }
    }

    /// `GET`/`HEAD` of this listener's own path where the RFC 9728 document is served.
    fn is_metadata_request(&self, req: &Request<Incoming>) -> bool {
        (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
            && self
                .shared
                .authorizer()
                .responder()
                .resource_metadata()
                .is_some_and(|doc| doc.path == req.uri().path())
    }

    /// The request the proxy is asking about, per [`OriginalRequest`].
    fn original<'a>(&self, req: &'a Request<Incoming>) -> Result<Original<'a>, &'static str> {
        let headers = req.headers();
        match self.config.original_request {
            OriginalRequest::Forwarded => Ok(Original {
                method: single(headers, "x-forwarded-method")?
                    .ok_or("the request has no X-Forwarded-Method header")?,
                uri: origin_form(
                    single(headers, "x-forwarded-uri")?
                        .ok_or("the request has no X-Forwarded-Uri header")?,
                )?,
                host: match single(headers, "x-forwarded-host")? {
                    Some(host) => host,
                    None => host(req)?,
                },
            }),
            OriginalRequest::Original => {
                let method = single(headers, "x-original-method")?
                    .ok_or("the request has no X-Original-Method header")?;
                if let Some(url) = single(headers, "x-original-url")? {
                    let (host, uri) = split_absolute(url)?;
                    return Ok(Original { method, host, uri });
                }
                let uri = single(headers, "x-original-uri")?
                    .ok_or("the request has neither X-Original-URL nor X-Original-URI")?;
                Ok(Original {
                    method,
                    uri: origin_form(uri)?,
                    host: match single(headers, "x-forwarded-host")? {
                        Some(host) => host,
                        None => host(req)?,
                    },
                })
            }
            OriginalRequest::Envoy => {
                let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                let uri = target
                    .strip_prefix(self.config.path_prefix.as_str())
                    .filter(|rest| rest.starts_with('/'))
                    .ok_or("the request path does not start with path_prefix")?;
                Ok(Original {
                    method: req.method().as_str(),
                    host: host(req)?,
                    uri,
                })
            }
        }
    }
}

/// Method, host and request target (path and optional query) of the request being authorized.
struct Original<'a> {
    method: &'a str,
    host: &'a str,
    uri: &'a str,
}

/// The one value of `name`; a repeated or non-ASCII header is an error, never a guess.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("a forwarding header is repeated");
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| "a forwarding header is not visible ASCII")
}

/// `Host`, or the `:authority` of an HTTP/2 request.
fn host(req: &Request<Incoming>) -> Result<&str, &'static str> {
    match single(req.headers(), "host")? {
        Some(host) => Ok(host),
        None => Ok(req.uri().authority().map_or("", |a| a.as_str())),
    }
}

/// A request target in origin form (`/path?query`, RFC 9112 §3.2.1).
fn origin_form(uri: &str) -> Result<&str, &'static str> {
    if uri.starts_with('/') {
        Ok(uri)
    } else {
        Err("the forwarded URI is not a path starting with `/`")
    }
}

/// `http(s)://host[:port]/path?query` → (`host[:port]`, `/path?query`).
fn split_absolute(url: &str) -> Result<(&str, &str), &'static str> {
    let invalid = "X-Original-URL is not an absolute http(s) URL";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(invalid)?;
    let (host, uri) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => rest.split_at(i),
        Some(_) => return Err(invalid),
        None => (rest, "/"),
    };
    if host.is_empty() || host.contains('@') {
        return Err(invalid);
    }
    Ok((host, uri))
}

/// 200: the proxy copies these headers onto the upstream request (nginx `auth_request_set`,
/// Traefik `authResponseHeaders`, Envoy `allowed_upstream_headers`). Removing a token query
/// parameter has no forward-auth equivalent; use the Authorization header or the proxy mode.
fn allowed(allowance: Allowance, envoy: bool) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    let headers = resp.headers_mut();
    for (name, value) in &allowance.identity.set {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    // Envoy's HTTP service mode has no `headers_to_remove` field; this header is its equivalent.
    // nginx and Traefik drop client copies themselves when the header is absent here.
    if envoy && !allowance.identity.remove.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&allowance.identity.remove.join(", ")) {
            headers.insert("x-envoy-auth-headers-to-remove", value);
        }
    }
    resp
}

/// The denial exactly as the gRPC path describes it: status, RFC 6750 challenge, JSON body (or
/// the RFC 9728 document, which the pipeline answers the same way).
pub(super) fn denied(denial: Denial) -> Response<Body> {
    let mut resp = Response::new(Body::from(denial.body));
    *resp.status_mut() =
        StatusCode::from_u16(denial.http_status).unwrap_or(StatusCode::UNAUTHORIZED);
    for (name, value) in denial.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// The proxy in front did not say which request it is asking about: a deployment error, so it is
/// logged, and the answer is neither an allow nor a client-facing challenge.
fn misconfigured(mode: OriginalRequest, why: &'static str) -> Response<Body> {
    tracing::warn!(
        original_request = ?mode,
        "forward-auth request rejected: {why}; check the proxy's forward-auth configuration"
    );
    super::server::json_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("forward-auth: {why} (original_request: {mode:?})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls_split_into_host_and_target() {
        assert_eq!(
            split_absolute("https://api.test:8443/a/b?c=d"),
            Ok(("api.test:8443", "/a/b?c=d"))
        );
        assert_eq!(split_absolute("http://api.test"), Ok(("api.test", "/")));
        assert!(split_absolute("ftp://api.test/").is_err());
        assert!(split_absolute("https://user@api.test/").is_err());
        assert!(split_absolute("https://api.test?x").is_err());
        assert!(split_absolute("/relative").is_err());
    }

    #[test]
    fn path_prefix_must_look_like_envoys() {
        let parse = |s: &str| {
            serde_norway::from_str::<ForwardAuthConfig>(&format!(
                "listen: 127.0.0.1:0\noriginal_request: envoy\npath_prefix: {s:?}\n"
            ))
        };
        assert_eq!(parse("/ext_authz").unwrap().path_prefix, "/ext_authz");
        assert_eq!(parse("").unwrap().path_prefix, "");
        assert!(parse("ext_authz").is_err());
        assert!(parse("/ext_authz/").is_err());
        assert!(parse("/a?b").is_err());
    }
}
