//! Configuration parsing and validation: any YAML text is accepted or rejected with an error,
//! never a panic. File-backed settings are dropped before validation so the fuzzer never reads
//! arbitrary paths (e.g. `/dev/zero`).

#![no_main]

use jwt_authz::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut config) = Config::from_yaml(text) else {
        return;
    };
    for issuer in &mut config.issuers {
        issuer.jwks_file = None;
        issuer.ca_file = None;
        issuer.cache_file = None;
    }
    if let Ok(valid) = config.validate() {
        assert_eq!(valid.issuers.len(), config.issuers.len());
        for issuer in &valid.issuers {
            assert!(!issuer.audiences.is_empty());
            assert!(!issuer.algorithms.is_empty());
        }
    }
});
