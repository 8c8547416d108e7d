//! Keys: discovery of the issuer's metadata, the JWKS fetch, the parsed key set, the lock-free
//! store, and the refresh loop that keeps it current.

pub mod discovery;
pub mod fetch;
pub mod keyset;
pub mod refresh;
pub mod store;

pub use keyset::{KeySet, VerifyKey};
pub use store::IssuerKeys;
