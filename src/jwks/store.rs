//! One issuer's keys: the current [`KeySet`] behind an atomic pointer (readers never lock), and
//! the single fetch that may be in flight for it. Every fetch — scheduled, cold start or unknown
//! `kid` — goes through [`IssuerKeys::fetch`], so concurrent callers share one request, and
//! request-triggered fetches are rate-limited by the issuer's cooldown.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use url::Url;

use super::{
    discovery,
    fetch::{FetchError, Fetcher, ACCEPT_JWKS},
    keyset::{KeySet, Lookup},
};
use crate::{
    authz::{verify::Jws, Deny},
    config::{Issuer, KeySource},
    metrics::{IssuerMetrics, Metrics},
};

/// What started a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The background refresh loop (never rate-limited).
    Scheduled,
    /// A request found no keys, or an unknown `kid` (rate-limited by the cooldown).
    OnDemand,
}

/// The result of the last completed fetch, published to everyone waiting on it.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    pub generation: u64,
    pub ok: bool,
    pub max_age: Option<Duration>,
}

#[derive(Default)]
struct Flight {
    in_flight: bool,
    last_on_demand: Option<Instant>,
}

/// Keys and fetch state of one issuer.
pub struct IssuerKeys {
    pub issuer: Arc<Issuer>,
    keys: ArcSwapOption<KeySet>,
    jwks_uri: ArcSwapOption<Url>,
    last_error: ArcSwapOption<String>,
    fetcher: Fetcher,
    flight: Mutex<Flight>,
    done: watch::Sender<FetchReport>,
    metrics: IssuerMetrics,
    next_refresh_ms: std::sync::atomic::AtomicU64,
    key_hit: prometheus::IntCounter,
    key_miss: prometheus::IntCounter,
}

enum Join {
    Wait(watch::Receiver<FetchReport>),
    RateLimited,
}

impl IssuerKeys {
    pub fn new(issuer: Issuer, metrics: &Metrics) -> Result<Arc<Self>, reqwest::Error> {
        let fetcher = Fetcher::new(&issuer)?;
        let issuer_metrics = metrics.issuer(&issuer.id);
        Ok(Arc::new(Self {
            issuer: Arc::new(issuer),
            keys: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            last_error: ArcSwapOption::empty(),
            fetcher,
            flight: Mutex::new(Flight::default()),
            done: watch::Sender::new(FetchReport::default()),
            metrics: issuer_metrics,
            next_refresh_ms: std::sync::atomic::AtomicU64::new(0),
            key_hit: metrics.key_hit.clone(),
            key_miss: metrics.key_miss.clone(),
        }))
    }

    /// The current key set if it is usable (present and not older than `max_stale`).
    pub fn current(&self) -> Option<Arc<KeySet>> {
        let set = self.keys.load_full()?;
        let age = SystemTime::now()
            .duration_since(set.fetched_at)
            .unwrap_or_default();
        (age <= self.issuer.max_stale).then_some(set)
    }

    /// Ready when usable keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.current().is_some()
    }

    /// Is the key with this fingerprint still in the current set? (A cached verification is
    /// only as good as the key that made it.)
    pub fn has_key(&self, fingerprint: u64) -> bool {
        self.current()
            .is_some_and(|set| set.keys().iter().any(|k| k.fingerprint == fingerprint))
    }

    /// Updates the key-set age gauge (called when metrics are scraped).
    pub fn publish_age(&self) {
        if let Some(set) = self.keys.load_full() {
            let age = SystemTime::now()
                .duration_since(set.fetched_at)
                .unwrap_or_default();
            self.metrics.age.set(age.as_secs_f64());
        }
    }

    /// True for a static key set, which needs no refresh loop.
    pub fn is_static(&self) -> bool {
        matches!(self.issuer.source, KeySource::Static(_))
    }

    /// The `jwks_uri` found by discovery (or configured).
    pub fn jwks_uri(&self) -> Option<Url> {
        match &self.issuer.source {
            KeySource::JwksUri(u) => Some(u.clone()),
            KeySource::Discover(_) => self.jwks_uri.load_full().map(|u| (*u).clone()),
            KeySource::Static(_) => None,
        }
    }

    /// When the refresh loop plans to fetch next.
    pub fn next_refresh(&self) -> Option<SystemTime> {
        let ms = self
            .next_refresh_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        (ms > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Records when the refresh loop will fetch next.
    pub fn set_next_refresh(&self, at: SystemTime) {
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.next_refresh_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The last fetch error, if the last fetch failed.
    pub fn last_error(&self) -> Option<Arc<String>> {
        self.last_error.load_full()
    }

    /// Verifies the token's signature with this issuer's keys (RFC 7515 §5.2 steps 7–8).
    /// Returns the fingerprint of the key that verified it.
    pub async fn verify_signature(self: &Arc<Self>, jws: &Jws<'_>) -> Result<u64, Deny> {
        if !self.issuer.algorithms.contains(jws.alg) {
            return Err(Deny::UnsupportedAlg);
        }
        let set = match self.current() {
            Some(set) => set,
            None => self.wait_for_keys().await?,
        };
        match check(&set, jws) {
            Err(Deny::UnknownKey) => {}
            other => {
                self.key_hit.inc();
                return other;
            }
        }
        self.key_miss.inc();
        // The set may be out of date (the issuer rotated): one shared, rate-limited refetch.
        let before = set.fetched_at;
        let set = self.refetch_for_unknown_kid(before).await?;
        check(&set, jws)
    }

    async fn wait_for_keys(self: &Arc<Self>) -> Result<Arc<KeySet>, Deny> {
        match self.start_or_join(Cause::OnDemand) {
            Join::Wait(rx) => self.wait(rx).await,
            Join::RateLimited => Err(Deny::KeysUnavailable),
        }?;
        self.current().ok_or(Deny::KeysUnavailable)
    }

    async fn refetch_for_unknown_kid(
        self: &Arc<Self>,
        seen: SystemTime,
    ) -> Result<Arc<KeySet>, Deny> {
        // Another request may have refreshed the set since we loaded it.
        if let Some(set) = self.current() {
            if set.fetched_at != seen {
                return Ok(set);
            }
        }
        match self.start_or_join(Cause::OnDemand) {
            Join::Wait(rx) => {
                self.wait(rx).await.map_err(|_| Deny::UnknownKey)?;
            }
            Join::RateLimited => {
                self.metrics.refetch_rate_limited.inc();
                return Err(Deny::UnknownKey);
            }
        }
        self.current().ok_or(Deny::KeysUnavailable)
    }

    /// Waits, at most `max_wait`, for the in-flight fetch to finish.
    async fn wait(&self, mut rx: watch::Receiver<FetchReport>) -> Result<FetchReport, Deny> {
        self.metrics.waiting.inc();
        let res = tokio::time::timeout(self.issuer.max_wait, rx.changed()).await;
        self.metrics.waiting.dec();
        match res {
            Ok(Ok(())) => Ok(rx.borrow().clone()),
            _ => Err(Deny::KeysUnavailable),
        }
    }

    /// Runs a fetch now (joining one in flight) and waits for it without a time bound.
    pub async fn fetch(self: &Arc<Self>, cause: Cause) -> Option<FetchReport> {
        match self.start_or_join(cause) {
            Join::Wait(mut rx) => {
                rx.changed().await.ok()?;
                let report = rx.borrow().clone();
                Some(report)
            }
            Join::RateLimited => None,
        }
    }

    fn start_or_join(self: &Arc<Self>, cause: Cause) -> Join {
        let mut flight = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        // Subscribed under the lock, so the completion (also sent under it) cannot be missed.
        let rx = self.done.subscribe();
        if flight.in_flight {
            return Join::Wait(rx);
        }
        if cause == Cause::OnDemand {
            let cooldown = self.issuer.unknown_kid_cooldown;
            if flight
                .last_on_demand
                .is_some_and(|t| t.elapsed() < cooldown)
            {
                return Join::RateLimited;
            }
            flight.last_on_demand = Some(Instant::now());
            self.metrics.refetch_performed.inc();
        }
        flight.in_flight = true;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let result = this.load().await;
            let report = this.record(result);
            let mut flight = this.flight.lock().unwrap_or_else(|p| p.into_inner());
            flight.in_flight = false;
            this.done.send_modify(|r| {
                *r = FetchReport {
                    generation: r.generation + 1,
                    ..report
                }
            });
        });
        Join::Wait(rx)
    }

    /// Discovery (when needed) and the JWKS GET. Installs the new set on success; on failure
    /// with nothing loaded yet, falls back to the last-known-good cache file.
    async fn load(&self) -> Result<Option<Duration>, FetchError> {
        let result = self.load_remote().await;
        if result.is_err() && self.keys.load().is_none() {
            self.load_cache_file().await;
        }
        result
    }

    async fn load_remote(&self) -> Result<Option<Duration>, FetchError> {
        let uri = match &self.issuer.source {
            KeySource::Static(doc) => {
                let set = KeySet::parse(doc, self.issuer.algorithms).map_err(|source| {
                    FetchError::KeySet {
                        url: "static key set".into(),
                        source,
                    }
                })?;
                self.install(set);
                return Ok(None);
            }
            KeySource::JwksUri(uri) => uri.clone(),
            KeySource::Discover(urls) => match self.jwks_uri.load_full() {
                Some(uri) => (*uri).clone(),
                None => {
                    let uri = discovery::discover(
                        &self.fetcher,
                        urls,
                        &self.issuer.id,
                        self.issuer.allow_insecure_http,
                    )
                    .await?;
                    self.jwks_uri.store(Some(Arc::new(uri.clone())));
                    uri
                }
            },
        };
        let fetched = match self.fetcher.get(&uri, ACCEPT_JWKS).await {
            Ok(f) => f,
            Err(e) => {
                // The metadata may have moved the keys: discover again next time.
                self.jwks_uri.store(None);
                return Err(e);
            }
        };
        let set = KeySet::parse(&fetched.body, self.issuer.algorithms).map_err(|source| {
            FetchError::KeySet {
                url: uri.to_string(),
                source,
            }
        })?;
        self.install(set);
        self.save_cache_file(&fetched.body).await;
        Ok(fetched.max_age)
    }

    fn install(&self, set: KeySet) {
        for (_, reason) in set.skipped() {
            self.metrics.skipped_key(reason.label());
        }
        self.metrics.keys.set(set.keys().len() as i64);
        self.keys.store(Some(Arc::new(set)));
    }

    /// Writes the JWKS next to the cache path and renames it into place (never a torn file).
    async fn save_cache_file(&self, body: &[u8]) {
        let Some(path) = &self.issuer.cache_file else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let result = async {
            tokio::fs::write(&tmp, body).await?;
            tokio::fs::rename(&tmp, path).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(issuer = %self.issuer.id, path = %path.display(), error = %e, "cannot write the JWKS cache file");
        }
    }

    /// Installs keys from the cache file, dated by its modification time so `max_stale` holds.
    async fn load_cache_file(&self) {
        let Some(path) = &self.issuer.cache_file else {
            return;
        };
        let Ok(body) = tokio::fs::read(path).await else {
            return;
        };
        let fetched_at = tokio::fs::metadata(path)
            .await
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match KeySet::parse_at(&body, self.issuer.algorithms, fetched_at) {
            Ok(set) => {
                tracing::warn!(issuer = %self.issuer.id, path = %path.display(), "provider unreachable: serving the last-known-good key set from the cache file");
                self.install(set);
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.id, path = %path.display(), error = %e, "ignoring unusable JWKS cache file");
            }
        }
    }

    fn record(&self, result: Result<Option<Duration>, FetchError>) -> FetchReport {
        match result {
            Ok(max_age) => {
                self.metrics.refresh_ok.inc();
                self.metrics.last_success.set(crate::authz::verify::now());
                self.last_error.store(None);
                tracing::debug!(issuer = %self.issuer.id, "key set refreshed");
                FetchReport {
                    generation: 0,
                    ok: true,
                    max_age,
                }
            }
            Err(e) => {
                self.metrics.refresh_failed(e.label());
                tracing::warn!(issuer = %self.issuer.id, error = %e, "key set fetch failed");
                self.last_error.store(Some(Arc::new(e.to_string())));
                FetchReport::default()
            }
        }
    }
}

/// Looks the token's key up in `set` and verifies the signature with each candidate.
fn check(set: &KeySet, jws: &Jws<'_>) -> Result<u64, Deny> {
    match set.lookup(jws.kid.as_deref(), jws.alg) {
        Lookup::Candidates(keys) => keys
            .iter()
            .find(|k| k.verify(jws.signing_input.as_bytes(), &jws.signature))
            .map(|k| k.fingerprint)
            .ok_or(Deny::BadSignature),
        Lookup::AlgMismatch => Err(Deny::KeyAlgMismatch),
        Lookup::Unknown => Err(Deny::UnknownKey),
    }
}
