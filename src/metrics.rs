//! Every Prometheus family jwt-authz exports, registered in one place. Label values are enums or
//! configured issuer identifiers — never anything taken from a request — and hot-path handles are
//! resolved once, so a check never looks a metric up by string.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::authz::Deny;

/// The front end a check arrived through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// Envoy ext_authz over gRPC.
    Grpc,
    /// The HTTP forward-auth endpoint (nginx auth_request, Traefik forwardAuth, Envoy HTTP ext_authz).
    ForwardAuth,
    /// The reverse proxy in front of the app.
    Proxy,
}

impl Frontend {
    pub const ALL: [Frontend; 3] = [Frontend::Grpc, Frontend::ForwardAuth, Frontend::Proxy];
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Grpc => "grpc",
            Frontend::ForwardAuth => "forward_auth",
            Frontend::Proxy => "proxy",
        }
    }
}

/// Pre-resolved handles for one front end.
pub struct FrontendMetrics {
    pub allowed: IntCounter,
    /// Requests answered directly (the RFC 9728 document).
    pub served: IntCounter,
    denied: Vec<IntCounter>,
    pub duration: Histogram,
}

impl FrontendMetrics {
    pub fn denied(&self, deny: &Deny) -> &IntCounter {
        &self.denied[deny.index()]
    }
}

/// Handles for one issuer.
pub struct IssuerMetrics {
    pub keys: IntGauge,
    pub age: Gauge,
    pub last_success: Gauge,
    pub refresh_ok: IntCounter,
    refresh_fail: IntCounterVec,
    skipped: IntCounterVec,
    pub refetch_performed: IntCounter,
    pub refetch_rate_limited: IntCounter,
    pub waiting: IntGauge,
    issuer: String,
}

impl IssuerMetrics {
    pub fn refresh_failed(&self, outcome: &'static str) {
        self.refresh_fail
            .with_label_values(&[self.issuer.as_str(), outcome])
            .inc();
    }
    pub fn skipped_key(&self, reason: &'static str) {
        self.skipped
            .with_label_values(&[self.issuer.as_str(), reason])
            .inc();
    }
}

/// The registry and every family in it.
pub struct Metrics {
    registry: Registry,
    frontends: Vec<FrontendMetrics>,
    pub key_hit: IntCounter,
    pub key_miss: IntCounter,
    pub cache_hit: IntCounter,
    pub cache_miss: IntCounter,
    pub cache_entries: IntGauge,
    refreshes: IntCounterVec,
    keys: IntGaugeVec,
    last_success: GaugeVec,
    age: GaugeVec,
    skipped: IntCounterVec,
    refetches: IntCounterVec,
    waiting: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload: Gauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration only fails on a duplicate or invalid name: a programming error caught by tests.
    r.expect("metric definitions are static and valid")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = must(Registry::new_custom(Some("jwt_authz".into()), None));
        let checks = must(IntCounterVec::new(
            Opts::new(
                "checks_total",
                "Authorization checks by front end, decision and reason.",
            ),
            &["frontend", "decision", "reason"],
        ));
        let duration = must(HistogramVec::new(
            HistogramOpts::new("check_duration_seconds", "Time to decide one check.").buckets(
                vec![
                    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                    0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
                ],
            ),
            &["frontend"],
        ));
        let lookups = must(IntCounterVec::new(
            Opts::new(
                "key_lookups_total",
                "Signing key lookups in the cached key set: hit or miss.",
            ),
            &["result"],
        ));
        let cache = must(IntCounterVec::new(
            Opts::new(
                "token_cache_lookups_total",
                "Verified-token cache lookups: hit (signature not re-verified) or miss.",
            ),
            &["result"],
        ));
        let cache_entries = must(IntGauge::new(
            "token_cache_entries",
            "Tokens held in the verified-token cache.",
        ));
        let refreshes = must(IntCounterVec::new(
            Opts::new(
                "jwks_refreshes_total",
                "Key set fetches by issuer and outcome.",
            ),
            &["issuer", "outcome"],
        ));
        let keys = must(IntGaugeVec::new(
            Opts::new("jwks_keys", "Usable verification keys loaded per issuer."),
            &["issuer"],
        ));
        let last_success = must(GaugeVec::new(
            Opts::new(
                "jwks_last_success_timestamp_seconds",
                "Unix time of the last successful key set fetch per issuer.",
            ),
            &["issuer"],
        ));
        let age = must(GaugeVec::new(
            Opts::new(
                "jwks_age_seconds",
                "Age of the key set in use per issuer (time since it was fetched).",
            ),
            &["issuer"],
        ));
        let skipped = must(IntCounterVec::new(
            Opts::new(
                "jwks_skipped_keys_total",
                "JWK entries skipped as unusable, by reason.",
            ),
            &["issuer", "reason"],
        ));
        let refetches = must(IntCounterVec::new(
            Opts::new(
                "jwks_unknown_kid_refetches_total",
                "Refetches triggered by an unknown kid: performed or rate_limited.",
            ),
            &["issuer", "result"],
        ));
        let waiting = must(IntGaugeVec::new(
            Opts::new(
                "jwks_waiting_requests",
                "Checks waiting for an in-flight key fetch.",
            ),
            &["issuer"],
        ));
        let reloads = must(IntCounterVec::new(
            Opts::new(
                "config_reloads_total",
                "Configuration reloads by outcome (ok, rejected).",
            ),
            &["outcome"],
        ));
        // Both outcomes exist from the start, so `increase()` sees the first rejection.
        reloads.with_label_values(&["rejected"]);
        let last_reload = must(Gauge::new(
            "config_last_reload_success_timestamp_seconds",
            "Unix time the running configuration was loaded.",
        ));
        let build = must(IntGaugeVec::new(
            Opts::new("build_info", "Always 1; labels carry the version."),
            &["version"],
        ));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(checks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(lookups.clone()),
            Box::new(cache.clone()),
            Box::new(cache_entries.clone()),
            Box::new(refreshes.clone()),
            Box::new(keys.clone()),
            Box::new(last_success.clone()),
            Box::new(age.clone()),
            Box::new(skipped.clone()),
            Box::new(refetches.clone()),
            Box::new(waiting.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload.clone()),
            Box::new(build),
        ] {
            must(registry.register(c));
        }
        let frontends = Frontend::ALL
            .iter()
            .map(|f| FrontendMetrics {
                allowed: checks.with_label_values(&[f.label(), "allow", "ok"]),
                served: checks.with_label_values(&[f.label(), "respond", "resource_metadata"]),
                denied: Deny::LABELS
                    .iter()
                    .map(|r| checks.with_label_values(&[f.label(), "deny", r]))
                    .collect(),
                duration: duration.with_label_values(&[f.label()]),
            })
            .collect();
        Self {
            registry,
            frontends,
            key_hit: lookups.with_label_values(&["hit"]),
            key_miss: lookups.with_label_values(&["miss"]),
            cache_hit: cache.with_label_values(&["hit"]),
            cache_miss: cache.with_label_values(&["miss"]),
            cache_entries,
            refreshes,
            keys,
            last_success,
            age,
            skipped,
            refetches,
            waiting,
            reloads,
            last_reload,
        }
    }

    /// Drops the per-issuer gauges of an issuer removed by a reload (counters stay: they are
    /// cumulative and Prometheus expects them not to vanish mid-life).
    pub fn forget_issuer(&self, issuer: &str) {
        let _ = self.keys.remove_label_values(&[issuer]);
        let _ = self.last_success.remove_label_values(&[issuer]);
        let _ = self.age.remove_label_values(&[issuer]);
        let _ = self.waiting.remove_label_values(&[issuer]);
    }

    /// Counts a configuration reload attempt.
    pub fn config_reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "rejected" }])
            .inc();
        if ok {
            self.last_reload.set(crate::authz::verify::now());
        }
    }

    pub fn frontend(&self, f: Frontend) -> &FrontendMetrics {
        &self.frontends[f as usize]
    }

    /// Handles for one configured issuer (its identifier is the label value).
    pub fn issuer(&self, issuer: &str) -> IssuerMetrics {
        IssuerMetrics {
            keys: self.keys.with_label_values(&[issuer]),
            age: self.age.with_label_values(&[issuer]),
            last_success: self.last_success.with_label_values(&[issuer]),
            refresh_ok: self.refreshes.with_label_values(&[issuer, "ok"]),
            refresh_fail: self.refreshes.clone(),
            skipped: self.skipped.clone(),
            refetch_performed: self.refetches.with_label_values(&[issuer, "performed"]),
            refetch_rate_limited: self.refetches.with_label_values(&[issuer, "rate_limited"]),
            waiting: self.waiting.with_label_values(&[issuer]),
            issuer: issuer.to_owned(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
