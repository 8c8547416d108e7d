//! JWKS parsing (RFC 7517 §5): any document either yields a bounded set of keys, each usable
//! only with an algorithm that matches its type, or an error — never a panic.

#![no_main]

use jwt_authz::{
    authz::alg::{Alg, AlgSet},
    jwks::{keyset::MAX_KEYS, KeySet},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all: AlgSet = Alg::ALL.into_iter().collect();
    let some: AlgSet = [Alg::RS256, Alg::ES256].into_iter().collect();
    for allowed in [all, some] {
        let Ok(set) = KeySet::parse(data, allowed) else {
            continue;
        };
        assert!(!set.keys().is_empty());
        // One JWK yields at most one verifying key per RSA algorithm.
        assert!(set.keys().len() <= MAX_KEYS * 6);
        for key in set.keys() {
            assert!(allowed.contains(key.alg));
            let _ = set.lookup(key.kid.as_deref(), key.alg);
            assert!(!key.verify(b"e30.e30", &[0u8; 64]));
        }
    }
});
