//! The reverse proxy for the sidecar pattern: jwt-authz listens on the pod's public port, checks
//! each request with the [`Authorizer`], and forwards allowed ones to the app with the identity
//! headers set and client-sent copies removed. A thin adapter: no authorization logic here, and
//! bodies stream through in both directions, never buffered whole.
//!
//! [`Authorizer`]: crate::authz::Authorizer

use std::{borrow::Cow, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::body::Body;
use http::{
    header::{self, HeaderName},
    uri::PathAndQuery,
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use serde::{Deserialize, Deserializer};
use tokio::net::TcpListener;
use url::Url;

use super::{forward_auth::denied, server};
use crate::{
    app::Shared,
    authz::{Allowance, AuthzRequest, Decision, Headers},
    metrics::Frontend,
};

/// `proxy:` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Listen address (the pod's public port).
    pub listen: SocketAddr,
    /// The app, e.g. `http://127.0.0.1:8000`; a path here is put before every request path.
    #[serde(deserialize_with = "upstream_url")]
    pub upstream: Url,
    /// `http1` (default; keep-alive, upgrades such as WebSocket) or `http2` (h2c, prior knowledge).
    #[serde(default)]
    pub upstream_protocol: UpstreamProtocol,
    /// Longest wait for a TCP connection to the app.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the app's response headers; the body may then stream for any time.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Idle keep-alive connections to the app are closed after this.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Idle keep-alive connections kept open to the app.
    #[serde(default = "default_max_idle")]
    pub max_idle_connections: usize,
    /// Keep the client's `X-Forwarded-For`/`-Host`/`-Proto` and `Forwarded` (appending the peer
    /// to `X-Forwarded-For`). Only when every client is a trusted proxy; otherwise they are
    /// replaced, since a client could claim any address.
    #[serde(default)]
    pub trust_forwarded_headers: bool,
}

impl ProxyConfig {
    /// A proxy on `listen` in front of `upstream`, with default timeouts.
    pub fn new(listen: SocketAddr, upstream: Url) -> Self {
        Self {
            listen,
            upstream,
            upstream_protocol: UpstreamProtocol::default(),
            connect_timeout: default_connect_timeout(),
            response_timeout: default_response_timeout(),
            idle_timeout: default_idle_timeout(),
            max_idle_connections: default_max_idle(),
            trust_forwarded_headers: false,
        }
    }
}

/// The protocol spoken to the app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (h2c); no upgrades.
    Http2,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_response_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_idle() -> usize {
    64
}

fn upstream_url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let url = Url::deserialize(d)?;
    let ok = url.scheme() == "http"
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if ok {
        Ok(url)
    } else {
        Err(serde::de::Error::custom(format!(
            "upstream {url} must be a plain http:// URL of the app, like http://127.0.0.1:8000 \
             (no https: the app is reached inside the pod; no user, query or fragment)"
        )))
    }
}

/// Serves the proxy until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: ProxyConfig,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let proxy = Arc::new(Proxy::new(config, shared));
    let handle = move |req: Request<Incoming>, peer: SocketAddr| {
        let proxy = proxy.clone();
        async move { proxy.handle(req, peer).await }
    };
    server::serve(listener, "proxy", handle, shutdown).await
}

// === impl Proxy ===

struct Proxy {
    shared: Arc<Shared>,
    client: Client<HttpConnector, Incoming>,
    /// `scheme://authority` of the app.
    origin: String,
    /// The upstream URL's path without its trailing `/` (usually empty).
    base_path: String,
    config: ProxyConfig,
}

impl Proxy {
    fn new(config: ProxyConfig, shared: Arc<Shared>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle_connections)
            .timer(TokioTimer::new())
            .http2_only(config.upstream_protocol == UpstreamProtocol::Http2)
            .build(connector);
        let origin = config.upstream.origin().ascii_serialization();
        let base_path = config.upstream.path().trim_end_matches('/').to_owned();
        Self {
            shared,
            client,
            origin,
            base_path,
            config,
        }
    }

    /// Check, then forward or answer with the denial.
    async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.method() == Method::CONNECT {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "CONNECT is not supported: this is a reverse proxy",
            );
        }
        let authorizer = self.shared.authorizer();
        let host = original_host(&req).to_owned();
        let decision = {
            let check = AuthzRequest {
                method: req.method().as_str(),
                host: &host,
                path: req.uri().path_and_query().map_or("/", PathAndQuery::as_str),
                headers: Headers::Http(req.headers()),
            };
            authorizer.decide(&check, Frontend::Proxy).await
        };
        let allowance = match decision {
            Decision::Allow(allowance) => allowance,
            // A denial, or the RFC 9728 document the pipeline serves itself.
            Decision::Deny(denial) => return denied(denial),
        };
        // Whatever the decision carries, a client never chooses its own identity headers.
        for name in authorizer.responder().identity_headers() {
            req.headers_mut().remove(name);
        }
        drop(authorizer);
        self.forward(req, allowance, &host, peer).await
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        allowance: Allowance,
        host: &str,
        peer: SocketAddr,
    ) -> Response<Body> {
        let Some(uri) = self.upstream_uri(req.uri(), &allowance.remove_query) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request target cannot be forwarded",
            );
        };
        let upgrade = self.take_upgrade(&mut req);
        self.rewrite(&mut req, uri, &allowance, host, peer);
        if let Some((protocol, _)) = &upgrade {
            let headers = req.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol.clone());
        }
        let sent = tokio::time::timeout(self.config.response_timeout, self.client.request(req));
        let mut resp = match sent.await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return self.bad_gateway(&e),
            Err(_) => {
                tracing::warn!(upstream = %self.origin, timeout = ?self.config.response_timeout, "upstream did not respond in time");
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the application did not respond in time",
                );
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return match upgrade {
                Some((_, client)) => {
                    splice(client, &mut resp);
                    resp.map(Body::new)
                }
                None => error(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    "the application switched protocols unasked",
                ),
            };
        }
        strip_hop_by_hop(resp.headers_mut());
        resp.map(Body::new)
    }

    /// The request as the app gets it: the app's `uri` and protocol version, hop-by-hop headers
    /// dropped, identity and forwarding headers set.
    fn rewrite(
        &self,
        req: &mut Request<Incoming>,
        uri: Uri,
        allowance: &Allowance,
        host: &str,
        peer: SocketAddr,
    ) {
        *req.uri_mut() = uri;
        *req.version_mut() = match self.config.upstream_protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::Http2 => Version::HTTP_2,
        };
        let headers = req.headers_mut();
        let wants_trailers = te_trailers(headers);
        strip_hop_by_hop(headers);
        headers.remove(header::EXPECT); // answered by our own server already
        if wants_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        apply(headers, allowance);
        self.set_forwarded(headers, host, peer);
        if !headers.contains_key(header::HOST) {
            // An HTTP/2 client's :authority, for an HTTP/1.1 app.
            if let Ok(value) = HeaderValue::from_str(host) {
                headers.insert(header::HOST, value);
            }
        }
    }

    /// For an HTTP/1.1 `Connection: upgrade` request (WebSocket): the protocol asked for, and
    /// the client side of the connection once our 101 has gone out.
    fn take_upgrade(
        &self,
        req: &mut Request<Incoming>,
    ) -> Option<(HeaderValue, hyper::upgrade::OnUpgrade)> {
        if req.version() != Version::HTTP_11
            || self.config.upstream_protocol != UpstreamProtocol::Http1
            || !connection_has(req.headers(), "upgrade")
        {
            return None;
        }
        let protocol = req.headers().get(header::UPGRADE)?.clone();
        Some((protocol, hyper::upgrade::on(req)))
    }

    /// The app's URI for `uri`, without the query parameters in `remove_query`.
    fn upstream_uri(&self, uri: &Uri, remove_query: &[String]) -> Option<Uri> {
        let target = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if !target.starts_with('/') {
            return None; // `OPTIONS *` and other non-origin forms
        }
        let target = without_query_params(target, remove_query);
        Uri::try_from(format!("{}{}{target}", self.origin, self.base_path)).ok()
    }

    /// `X-Forwarded-For`, `-Host` and `-Proto`, replacing the client's unless trusted.
    fn set_forwarded(&self, headers: &mut HeaderMap, host: &str, peer: SocketAddr) {
        let peer_ip = peer.ip().to_string();
        let trusted = self.config.trust_forwarded_headers;
        let xff = if trusted {
            let prior: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            prior
                .into_iter()
                .chain([peer_ip.as_str()])
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            for name in [
                "forwarded",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-forwarded-port",
                "x-real-ip",
            ] {
                headers.remove(name);
            }
            peer_ip
        };
        if let Ok(value) = HeaderValue::from_str(&xff) {
            headers.insert("x-forwarded-for", value);
        }
        if !headers.contains_key("x-forwarded-proto") {
            headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        }
        if !headers.contains_key("x-forwarded-host") {
            if let Ok(value) = HeaderValue::from_str(host) {
                headers.insert("x-forwarded-host", value);
            }
        }
    }

    /// 502 for an app that cannot be reached or broke the exchange. The cause is logged; the
    /// client learns only that the app is unavailable.
    fn bad_gateway(&self, e: &hyper_util::client::legacy::Error) -> Response<Body> {
        let cause = root_cause(e);
        tracing::warn!(upstream = %self.origin, error = %cause, connect = e.is_connect(), "upstream request failed");
        let description = if e.is_connect() {
            "the application is not accepting connections"
        } else {
            "the application closed the connection without a response"
        };
        error(StatusCode::BAD_GATEWAY, "bad_gateway", description)
    }
}

/// Once both sides have switched protocols, copies bytes between them until either closes.
fn splice(client: hyper::upgrade::OnUpgrade, resp: &mut Response<Incoming>) {
    let upstream = hyper::upgrade::on(&mut *resp);
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
        }
    });
}

/// `target` without the query parameters named in `names` (a token sent in the query, RFC 6750
/// §2.3); the other parameters stay byte for byte as the client sent them.
fn without_query_params<'a>(target: &'a str, names: &[String]) -> Cow<'a, str> {
    let Some((path, query)) = target.split_once('?').filter(|_| !names.is_empty()) else {
        return Cow::Borrowed(target);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(k, _)| k);
            !name.is_some_and(|k| names.iter().any(|n| *n == k))
        })
        .collect();
    if kept.is_empty() {
        Cow::Owned(path.to_owned())
    } else {
        Cow::Owned(format!("{path}?{}", kept.join("&")))
    }
}

/// `Host` (HTTP/1.1) or `:authority` (HTTP/2).
fn original_host(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// Sets and removes the identity headers the decision carries.
fn apply(headers: &mut HeaderMap, allowance: &Allowance) {
    for name in &allowance.identity.remove {
        headers.remove(name.as_str());
    }
    for (name, value) in &allowance.identity.set {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// True if a `Connection` header lists `token`.
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn te_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1): those
/// `Connection` names, and the fixed hop-by-hop set.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A JSON error from the proxy itself (not a denial, which carries a challenge).
fn error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    super::server::json_error(status, error, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upstream_must_be_plain_http() {
        let parse = |u: &str| {
            serde_norway::from_str::<ProxyConfig>(&format!(
                "listen: 127.0.0.1:0\nupstream: {u:?}\n"
            ))
        };
        assert!(parse("http://127.0.0.1:8000").is_ok());
        assert!(parse("http://app:8000/base/").is_ok());
        assert!(parse("https://127.0.0.1:8443").is_err());
        assert!(parse("http://u:p@127.0.0.1:8000").is_err());
        assert!(parse("http://127.0.0.1:8000/?q=1").is_err());
    }

    #[test]
    fn only_the_named_query_parameters_are_removed() {
        let names = vec!["access_token".to_owned()];
        assert_eq!(
            without_query_params("/a?x=1&access_token=t&y=%20+", &names),
            "/a?x=1&y=%20+"
        );
        assert_eq!(without_query_params("/a?access_token=t", &names), "/a");
        assert_eq!(without_query_params("/a?access%5Ftoken=t", &names), "/a");
        assert_eq!(without_query_params("/a?x=1", &[]), "/a?x=1");
    }

    #[test]
    fn connection_tokens_are_case_insensitive_lists() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(connection_has(&h, "upgrade"));
        assert!(!connection_has(&h, "close"));
    }
}
