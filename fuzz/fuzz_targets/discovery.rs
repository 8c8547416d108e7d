//! Authorization server metadata (OIDC Discovery §4, RFC 8414 §3): a document yields a
//! `jwks_uri` only if it names the expected issuer exactly and the URI is https (or loopback /
//! explicitly allowed http).

#![no_main]

use std::sync::LazyLock;

use jwt_authz::{config::is_loopback, jwks::discovery::parse_metadata};
use libfuzzer_sys::fuzz_target;
use url::Url;

const ISSUER: &str = "https://idp.fuzz";

static URL: LazyLock<Url> = LazyLock::new(|| {
    Url::parse("https://idp.fuzz/.well-known/openid-configuration").expect("static URL")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(uri) = parse_metadata(data, &URL, ISSUER, false) {
        assert!(
            uri.scheme() == "https" || (uri.scheme() == "http" && is_loopback(&uri)),
            "{uri}"
        );
    }
    if let Ok(uri) = parse_metadata(data, &URL, ISSUER, true) {
        assert!(matches!(uri.scheme(), "https" | "http"), "{uri}");
    }
});
