//! HTTP GET of discovery metadata and key sets: bounded in time, size and redirects, never
//! downgraded from https to http. Returns the body and how long the server says it may be cached.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, ACCEPT, CACHE_CONTROL, EXPIRES};
use url::Url;

use super::keyset::KeySetError;
use crate::config::Issuer;

/// `Accept` for key sets (RFC 7517 §8.5.1 registers `application/jwk-set+json`).
pub const ACCEPT_JWKS: &str = "application/jwk-set+json, application/json;q=0.9";
/// `Accept` for metadata documents.
pub const ACCEPT_JSON: &str = "application/json";

const MAX_REDIRECTS: usize = 3;

/// Why a fetch failed. `label()` values are the `outcome` metric label.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer in time")]
    Timeout { url: String },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not send valid JSON: {reason}")]
    InvalidJson { url: String, reason: String },
    #[error("metadata at {url} names issuer {found:?}, but the configured issuer is {expected:?}; they must match exactly (OIDC Discovery §4.3, RFC 8414 §3.3)")]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("metadata at {url} has no usable jwks_uri: {reason}")]
    NoJwksUri { url: String, reason: String },
    #[error("key set from {url} rejected: {source}")]
    KeySet { url: String, source: KeySetError },
}

impl FetchError {
    pub const LABELS: [&'static str; 8] = [
        "http_status",
        "timeout",
        "connect",
        "too_large",
        "invalid_json",
        "issuer_mismatch",
        "no_jwks_uri",
        "no_usable_keys",
    ];

    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Status { .. } => "http_status",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Connect { .. } => "connect",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::InvalidJson { .. } => "invalid_json",
            FetchError::IssuerMismatch { .. } => "issuer_mismatch",
            FetchError::NoJwksUri { .. } => "no_jwks_uri",
            FetchError::KeySet {
                source: KeySetError::NotAKeySet(_),
                ..
            } => "invalid_json",
            FetchError::KeySet { .. } => "no_usable_keys",
        }
    }
}

/// A fetched document.
pub struct Fetched {
    pub body: Bytes,
    /// From `Cache-Control: max-age` or `Expires` (RFC 9111 §5.2.2.1, §5.3).
    pub max_age: Option<Duration>,
}

/// One HTTP client per issuer, with that issuer's limits.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

impl Fetcher {
    pub fn new(issuer: &Issuer) -> Result<Self, reqwest::Error> {
        let allow_http = issuer.allow_insecure_http;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let downgrade = attempt.url().scheme() == "http"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if downgrade && !allow_http {
                attempt.error("redirect from https to http refused")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &issuer.ca_pem {
            // Validated at config load; trusted in addition to the system roots.
            builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        let client = builder
            .connect_timeout(issuer.connect_timeout)
            .timeout(issuer.request_timeout)
            .redirect(redirects)
            .user_agent(concat!("jwt-authz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            max_bytes: issuer.max_response_bytes,
        })
    }

    /// GETs `url`, reading at most the configured number of bytes.
    pub async fn get(&self, url: &Url, accept: &str) -> Result<Fetched, FetchError> {
        let name = || url.to_string();
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout { url: name() }
            } else {
                // reqwest's own message repeats the URL; its sources say what went wrong.
                let reason =
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), error_chain);
                FetchError::Connect {
                    url: name(),
                    reason,
                }
            }
        };
        let mut resp = self
            .client
            .get(url.clone())
            .header(ACCEPT, accept)
            .send()
            .await
            .map_err(classify)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: name(),
                status: status.as_u16(),
            });
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge {
                url: name(),
                limit: self.max_bytes,
            });
        }
        let max_age = cache_lifetime(resp.headers(), SystemTime::now());
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge {
                    url: name(),
                    limit: self.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body: body.freeze(),
            max_age,
        })
    }
}

/// The error and its sources on one line (reqwest hides the cause otherwise).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Freshness lifetime from `Cache-Control` (`no-store`/`no-cache` → zero) or `Expires`.
pub fn cache_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(cc) = headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        for directive in cc.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(v) = lower.strip_prefix("max-age=") {
                if let Ok(secs) = v.trim_matches('"').parse::<u64>() {
                    return Some(Duration::from_secs(secs));
                }
            }
        }
    }
    let expires = headers.get(EXPIRES)?.to_str().ok()?;
    let at = httpdate_parse(expires)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn httpdate_parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .or_else(|| imf_fixdate(s))
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let mut it = rest.split(' ');
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = it.next()?.parse().ok()?;
    let time = it.next()?;
    if it.next()? != "GMT" {
        return None;
    }
    let stamp = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    humantime::parse_rfc3339(&stamp).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(name: reqwest::header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn reads_max_age() {
        let h = headers(CACHE_CONTROL, "public, max-age=600");
        assert_eq!(
            cache_lifetime(&h, SystemTime::now()),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn no_store_means_zero() {
        let h = headers(CACHE_CONTROL, "no-store");
        assert_eq!(cache_lifetime(&h, SystemTime::now()), Some(Duration::ZERO));
    }

    #[test]
    fn reads_expires_relative_to_now() {
        let h = headers(EXPIRES, "Sun, 06 Nov 1994 08:59:37 GMT");
        let now = humantime::parse_rfc3339("1994-11-06T08:49:37Z").unwrap();
        assert_eq!(cache_lifetime(&h, now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn absent_headers_mean_unknown() {
        assert_eq!(cache_lifetime(&HeaderMap::new(), SystemTime::now()), None);
    }
}
