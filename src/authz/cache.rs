//! The verified-token cache: a token whose signature and lifetime checks passed is remembered
//! under the SHA-256 of its exact bytes, so a different token can never hit another's entry.
//! Entries live no longer than the token's `exp` nor `max_ttl`, are bounded in count and in
//! bytes, and are ignored once the key that verified them leaves the key set. Only successes are
//! cached (a flood of garbage cannot fill it), and route policy is still evaluated every time.

use std::{sync::Arc, time::Duration};

use aws_lc_rs::digest;
use moka::{sync::Cache, Expiry};
use serde::Deserialize;

use super::claims::Claims;

/// `token_cache:` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most tokens kept (0 disables the cache).
    #[serde(default = "default_entries")]
    pub max_entries: u64,
    /// Most memory the entries may take, in bytes (estimated from the claims' size).
    #[serde(default = "default_bytes")]
    pub max_bytes: u64,
    /// Longest an entry lives, whatever the token's `exp`.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
}

fn default_entries() -> u64 {
    100_000
}
fn default_bytes() -> u64 {
    48 << 20
}
fn default_ttl() -> Duration {
    Duration::from_secs(300)
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: default_entries(),
            max_bytes: default_bytes(),
            max_ttl: default_ttl(),
        }
    }
}

/// What a verification established about a token.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    pub typ: Option<String>,
    /// The key that verified the signature ([`crate::jwks::VerifyKey::fingerprint`]).
    pub fingerprint: u64,
    /// Estimated memory, in bytes.
    pub size: u32,
}

/// Cache key: SHA-256 of the token.
pub type Key = [u8; 32];

/// The cache.
pub struct TokenCache {
    inner: Cache<Key, Arc<Verified>>,
}

struct UntilExp {
    max_ttl: Duration,
}

impl Expiry<Key, Arc<Verified>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Verified>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = value.claims.exp - super::verify::now();
        let until_exp = Duration::try_from_secs_f64(left.max(0.0)).unwrap_or(Duration::ZERO);
        Some(until_exp.min(self.max_ttl))
    }
}

impl TokenCache {
    /// `None` when disabled.
    pub fn new(cfg: &CacheConfig) -> Option<Self> {
        if cfg.max_entries == 0 || cfg.max_bytes == 0 {
            return None;
        }
        // Each entry weighs at least max_bytes / max_entries, so both bounds hold at once.
        let floor = (cfg.max_bytes / cfg.max_entries).clamp(1, u64::from(u32::MAX)) as u32;
        let inner = Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(move |_k: &Key, v: &Arc<Verified>| v.size.max(floor))
            .expire_after(UntilExp {
                max_ttl: cfg.max_ttl,
            })
            .build();
        Some(Self { inner })
    }

    pub fn key(token: &str) -> Key {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut k = [0; 32];
        k.copy_from_slice(d.as_ref());
        k
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Verified>> {
        self.inner.get(key)
    }

    pub fn insert(&self, key: Key, value: Arc<Verified>) {
        self.inner.insert(key, value);
    }

    pub fn remove(&self, key: &Key) {
        self.inner.invalidate(key);
    }

    /// Entries currently held (approximate; for metrics).
    pub fn len(&self) -> u64 {
        self.inner.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rough size of a verified token in memory: the map, its keys and values.
pub fn estimate_size(payload_len: usize) -> u32 {
    // serde_json's Map (a BTreeMap) costs about 3x the JSON text for typical claim sets.
    (256 + payload_len.saturating_mul(3)).min(u32::MAX as usize) as u32
}
