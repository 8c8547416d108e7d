//! Authorization server metadata: OpenID Connect Discovery 1.0 §4 first, then RFC 8414 §3.
//! The document's `issuer` must equal the configured issuer exactly (OIDC Discovery §4.3,
//! RFC 8414 §3.3); its `jwks_uri` may point anywhere (another host is normal).

use serde::Deserialize;
use url::Url;

use super::fetch::{FetchError, Fetcher, ACCEPT_JSON};
use crate::config::is_loopback;

/// The metadata locations for an issuer, in the order they are tried.
pub fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = Vec::with_capacity(2);
    // OIDC Discovery §4: issuer + "/.well-known/openid-configuration", trailing '/' removed.
    let base = issuer.as_str().trim_end_matches('/');
    if let Ok(u) = Url::parse(&format!("{base}/.well-known/openid-configuration")) {
        urls.push(u);
    }
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    let path = issuer.path().trim_end_matches('/');
    let mut u = issuer.clone();
    u.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    u.set_query(None);
    urls.push(u);
    urls
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: Option<String>,
}

fn expected_issuer_is_loopback(issuer: &str) -> bool {
    Url::parse(issuer).is_ok_and(|u| u.scheme() == "http" && is_loopback(&u))
}

/// Fetches metadata from `urls` in order and returns the validated `jwks_uri`.
pub async fn discover(
    fetcher: &Fetcher,
    urls: &[Url],
    expected_issuer: &str,
    allow_http: bool,
) -> Result<Url, FetchError> {
    let mut first_error = None;
    for url in urls {
        match discover_one(fetcher, url, expected_issuer, allow_http).await {
            Ok(jwks) => return Ok(jwks),
            Err(e) => {
                tracing::debug!(%url, error = %e, "metadata location failed");
                // A 404 just means "not here, try the next form"; any other error is the one
                // worth reporting.
                let not_found = matches!(e, FetchError::Status { status: 404, .. });
                if first_error.is_none() || (!not_found && is_not_found(&first_error)) {
                    first_error = Some(e);
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| FetchError::NoJwksUri {
        url: expected_issuer.to_owned(),
        reason: "no metadata location".into(),
    }))
}

fn is_not_found(e: &Option<FetchError>) -> bool {
    matches!(e, Some(FetchError::Status { status: 404, .. }))
}

async fn discover_one(
    fetcher: &Fetcher,
    url: &Url,
    expected_issuer: &str,
    allow_http: bool,
) -> Result<Url, FetchError> {
    let doc = fetcher.get(url, ACCEPT_JSON).await?;
    parse_metadata(&doc.body, url, expected_issuer, allow_http)
}

/// Parses a metadata document fetched from `url` and returns its validated `jwks_uri`: the
/// `issuer` must match exactly and the `jwks_uri` must be https (unless loopback or allowed).
/// Pure, so it can be fuzzed.
pub fn parse_metadata(
    body: &[u8],
    url: &Url,
    expected_issuer: &str,
    allow_http: bool,
) -> Result<Url, FetchError> {
    let meta: Metadata = serde_json::from_slice(body).map_err(|e| FetchError::InvalidJson {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if meta.issuer != expected_issuer {
        return Err(FetchError::IssuerMismatch {
            url: url.to_string(),
            found: meta.issuer,
            expected: expected_issuer.to_owned(),
        });
    }
    let no_jwks = |reason: String| FetchError::NoJwksUri {
        url: url.to_string(),
        reason,
    };
    let raw = meta.jwks_uri.ok_or_else(|| no_jwks("missing".into()))?;
    let jwks = Url::parse(&raw).map_err(|e| no_jwks(format!("{raw:?}: {e}")))?;
    match jwks.scheme() {
        "https" => Ok(jwks),
        // A loopback jwks_uri is fine for a loopback issuer (development); a remote https issuer
        // must not send keys over plain http, not even to localhost.
        "http"
            if allow_http
                || (is_loopback(&jwks) && expected_issuer_is_loopback(expected_issuer)) =>
        {
            Ok(jwks)
        }
        _ => Err(no_jwks(format!("{jwks} must use https"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(issuer: &str) -> Vec<String> {
        metadata_urls(&Url::parse(issuer).unwrap())
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn host_only_issuer() {
        assert_eq!(
            urls("https://idp.example"),
            [
                "https://idp.example/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn path_issuer_uses_rfc8414_path_insertion() {
        assert_eq!(
            urls("https://idp.example/tenant/a/"),
            [
                "https://idp.example/tenant/a/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server/tenant/a",
            ]
        );
    }
}
