//! `Authorization` header parsing (RFC 6750 §2.1): a token is returned only if it is one
//! non-empty token68 (RFC 9110 §11.2) taken verbatim from the header.

#![no_main]

use jwt_authz::authz::token::bearer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = bearer(value) {
        assert!(!token.is_empty());
        assert!(value.contains(token));
        let body = token.trim_end_matches('=');
        assert!(!body.is_empty());
        assert!(body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
        assert!(value[..6].eq_ignore_ascii_case("bearer"));
    }
});
