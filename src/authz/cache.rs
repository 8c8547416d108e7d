//! The verified-token cache: a token whose signature and lifetime checks passed is remembered
//! under the SHA-256 of its exact bytes, so a different token can never hit another's entry.
//! Entries live no longer than the token's `exp` nor `max_ttl`, are bounded in count and in
//! bytes, and are ignored once the key that verified them leaves the key set. Only successes are
//! cached (a flood of garbage cannot fill it), and route policy is still evaluated every time.

use std::{sync::Arc, time::Duration};

use aws_lc_rs::digest;
use moka::{sync::Cache, Expiry};
use serde::Deserialize;

use serde_json::Value;

use super::{claims::Claims, respond::Identity};

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
    /// What an allowed request with this token tells the upstream (built once, here).
    pub identity: Arc<Identity>,
    /// Estimated memory, in bytes ([`estimate_size`]).
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

/// The memory a cache entry holds, estimated from what it contains: the claims as parsed (a
/// `BTreeMap` of `Value`s), the identity built from them, and a fixed part for the entry itself
/// (the cache's own node, key and bookkeeping, the `Arc` and `Verified`), calibrated against the
/// RSS growth per entry measured by `scripts/bench-grpc` (see BENCHMARKS.md).
pub fn estimate_size(claims: &Claims, typ: Option<&str>, identity: &Identity) -> u32 {
    const ENTRY: usize = 400;
    let total = ENTRY
        + object_heap(&claims.all)
        + claims.iss.len()
        + claims.sub.as_ref().map_or(0, String::len)
        + typ.map_or(0, str::len)
        + identity.heap_size();
    total.min(u32::MAX as usize) as u32
}

/// Heap bytes of a parsed JSON object: B-tree nodes (a key and a value per slot, nodes about
/// two-thirds full) plus each key's and value's own allocations, with allocator overhead.
fn object_heap(map: &serde_json::Map<String, Value>) -> usize {
    const SLOT: usize = (24 + 32) * 3 / 2;
    map.iter()
        .map(|(k, v)| SLOT + alloc(k.len()) + value_heap(v))
        .sum()
}

fn value_heap(v: &Value) -> usize {
    match v {
        Value::String(s) => alloc(s.len()),
        Value::Array(items) => {
            alloc(32 * items.len()) + items.iter().map(value_heap).sum::<usize>()
        }
        Value::Object(m) => object_heap(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// One allocation of `len` bytes: rounded up to 16, plus a 16-byte header; nothing for empty.
fn alloc(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.div_ceil(16) * 16 + 16
    }
}
