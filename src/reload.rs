//! Configuration as a running value: the issuers' key stores (with their refresh loops) and the
//! authorizer built from a validated config, and safe hot reload. A reload parses and validates
//! the whole new file first; only then is a complete new authorizer swapped in atomically. An
//! invalid file changes nothing. Issuers whose settings did not change keep their keys.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use crate::{
    app::{Shared, StartError},
    authz::{cache::TokenCache, resource::ResourceMetadata, Authorizer, Responder},
    config::{Config, ConfigError, IssuerConfig},
    jwks::{refresh, IssuerKeys},
    metrics::Metrics,
};

/// Produces the current configuration (re-reads the file, re-applies command-line flags).
pub type ConfigLoader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The issuers of a built authorizer, for [`Issuers::commit`].
pub type Built = Vec<(IssuerConfig, Arc<IssuerKeys>)>;

struct Entry {
    config: IssuerConfig,
    keys: Arc<IssuerKeys>,
    stop: CancellationToken,
    running: bool,
}

/// The issuers currently configured, keyed by identifier.
pub struct Issuers {
    entries: Mutex<HashMap<String, Entry>>,
    metrics: Arc<Metrics>,
    background: Mutex<Option<CancellationToken>>,
    /// The settings the process started with, which a reload cannot change (see [`started_with`]).
    started: Mutex<Option<RestartOnly>>,
}

impl Issuers {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            metrics,
            background: Mutex::new(None),
            started: Mutex::new(None),
        }
    }

    /// Builds a complete authorizer for `config`, reusing key stores of unchanged issuers.
    /// Nothing is started or stopped here: see [`Issuers::commit`].
    pub fn build(&self, config: &Config) -> Result<(Authorizer, Built), StartError> {
        let validated = config.validate()?;
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::new();
        for (cfg, issuer) in config.issuers.iter().zip(validated.issuers) {
            let reused = entries
                .get(&issuer.id)
                .filter(|e| e.config == *cfg)
                .map(|e| e.keys.clone());
            let k = match reused {
                Some(k) => k,
                None => {
                    let id = issuer.id.clone();
                    IssuerKeys::new(issuer, &self.metrics)
                        .map_err(|source| StartError::Client { issuer: id, source })?
                }
            };
            keys.push((cfg.clone(), k));
        }
        drop(entries);
        let ids: Vec<&str> = config.issuers.iter().map(|i| i.issuer.as_str()).collect();
        let resource = config.protected_resource.as_ref().map(|pr| {
            ResourceMetadata::new(
                pr,
                &ids,
                validated.policy.scopes(),
                config
                    .token_sources
                    .iter()
                    .filter_map(|s| s.bearer_method())
                    .fold(Vec::new(), |mut v, m| {
                        if !v.contains(&m) {
                            v.push(m);
                        }
                        v
                    }),
            )
        });
        let responder = Responder::new(
            config.realm.clone(),
            config.upstream_headers.clone(),
            config.metadata_key.clone(),
            resource,
        )
        .with_metadata_claims(config.metadata_claims.clone());
        let authorizer = Authorizer::new(
            keys.iter().map(|(_, k)| k.clone()).collect(),
            validated.policy,
            config.token_sources.clone(),
            responder,
            self.metrics.clone(),
        )
        .with_cache(TokenCache::new(&config.token_cache))
        .with_decision_log(config.decision_log)
        .with_max_token_bytes(config.max_token_bytes);
        Ok((authorizer, keys))
    }

    /// Records the issuers of a just-installed authorizer: starts refresh loops for new ones
    /// (once running) and stops those of issuers that are gone or replaced.
    pub fn commit(&self, keys: Built) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let background = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut next = HashMap::new();
        for (config, k) in keys {
            let id = k.issuer.id.clone();
            let entry = match entries.remove(&id) {
                Some(e) if Arc::ptr_eq(&e.keys, &k) => e,
                old => {
                    if let Some(old) = old {
                        old.stop.cancel();
                    }
                    Entry {
                        config,
                        keys: k,
                        stop: CancellationToken::new(),
                        running: false,
                    }
                }
            };
            next.insert(id, entry);
        }
        for (id, gone) in entries.drain() {
            gone.stop.cancel();
            if !next.contains_key(&id) {
                self.metrics.forget_issuer(&id);
            }
        }
        *entries = next;
        if let Some(parent) = background {
            start_loops(&mut entries, &parent);
        }
    }

    /// Starts every refresh loop; they stop when `parent` is cancelled.
    pub fn start(&self, parent: CancellationToken) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        start_loops(&mut entries, &parent);
        *self.background.lock().unwrap_or_else(|p| p.into_inner()) = Some(parent);
    }
}

fn start_loops(entries: &mut HashMap<String, Entry>, parent: &CancellationToken) {
    for e in entries.values_mut().filter(|e| !e.running) {
        let stop = parent.child_token();
        e.stop = stop.clone();
        e.running = true;
        tokio::spawn(refresh::run(e.keys.clone(), stop));
    }
}

/// Reloads on SIGHUP and whenever the config file changes (checked every second: this also sees
/// Kubernetes ConfigMap updates, which swap a symlink).
pub async fn watch(
    loader: ConfigLoader,
    file: Option<PathBuf>,
    shared: Arc<Shared>,
    issuers: Arc<Issuers>,
    stop: CancellationToken,
) {
    let mut last = file.as_deref().and_then(stamp);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_recv = std::future::pending::<()>();
        let reason = tokio::select! {
            _ = stop.cancelled() => return,
            _ = hup_recv => {
                // The edit that prompted the signal must not trigger a second reload.
                last = file.as_deref().and_then(stamp);
                "SIGHUP"
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let now = file.as_deref().and_then(stamp);
                if now == last {
                    continue;
                }
                last = now;
                "file changed"
            }
        };
        reload(&loader, &shared, &issuers, reason);
    }
}

/// One reload attempt; the old configuration stays in force unless the new one is valid.
pub fn reload(loader: &ConfigLoader, shared: &Shared, issuers: &Issuers, reason: &str) -> bool {
    let built = loader().map_err(StartError::from).and_then(|config| {
        let restart_only = RestartOnly::of(&config);
        issuers.build(&config).map(|b| (b, restart_only))
    });
    match built {
        Ok(((authorizer, keys), restart_only)) => {
            shared.install(authorizer);
            issuers.commit(keys);
            shared.metrics.config_reload(true);
            tracing::info!(reason, "configuration reloaded");
            let started = issuers.started.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(started) = started.as_ref() {
                let changed = started.differences(&restart_only);
                if !changed.is_empty() {
                    tracing::warn!(
                        changed = %changed.join(", "),
                        "these settings differ from the ones the process started with and apply only after a restart"
                    );
                }
            }
            true
        }
        Err(e) => {
            shared.metrics.config_reload(false);
            tracing::error!(reason, error = %e, "configuration reload rejected; keeping the running configuration");
            false
        }
    }
}

/// The settings a reload cannot apply: listeners are bound, and the drain set up, once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartOnly {
    listen: crate::config::Listen,
    forward_auth: Option<crate::http::forward_auth::ForwardAuthConfig>,
    proxy: Option<crate::http::proxy::ProxyConfig>,
    drain_timeout: std::time::Duration,
}

impl RestartOnly {
    fn of(c: &Config) -> Self {
        Self {
            listen: c.listen.clone(),
            forward_auth: c.forward_auth.clone(),
            proxy: c.proxy.clone(),
            drain_timeout: c.drain_timeout,
        }
    }

    /// The top-level settings that differ, by their names in the config file.
    fn differences(&self, other: &Self) -> Vec<&'static str> {
        [
            ("listen", self.listen != other.listen),
            ("forward_auth", self.forward_auth != other.forward_auth),
            ("proxy", self.proxy != other.proxy),
            ("drain_timeout", self.drain_timeout != other.drain_timeout),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

/// Records the settings the process started with; every later reload is compared with these.
pub fn started_with(issuers: &Issuers, config: &Config) {
    *issuers.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(RestartOnly::of(config));
}

/// Modification time and length of the file behind `path` (following symlinks).
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> RestartOnly {
        let yaml =
            format!("issuers:\n  - issuer: https://id.example.com\n    audiences: [api]\n{extra}");
        RestartOnly::of(&Config::from_yaml(&yaml).expect("valid config"))
    }

    #[test]
    fn names_exactly_the_settings_a_reload_cannot_apply() {
        let base = settings("");
        assert_eq!(base.differences(&settings("")), Vec::<&str>::new());
        // Policy and issuer settings are not restart-only.
        assert!(base
            .differences(&settings("default_action: deny\n"))
            .is_empty());
        assert_eq!(
            base.differences(&settings("listen:\n  grpc: 127.0.0.1:1\n")),
            ["listen"]
        );
        assert_eq!(
            base.differences(&settings(
                "drain_timeout: 1s\nforward_auth:\n  listen: 127.0.0.1:2\n"
            )),
            ["forward_auth", "drain_timeout"]
        );
        let proxy = "proxy:\n  listen: 127.0.0.1:3\n  upstream: http://127.0.0.1:4\n";
        assert_eq!(
            settings(proxy).differences(&settings(proxy)),
            Vec::<&str>::new()
        );
        assert_eq!(
            settings(proxy).differences(&settings(
                "proxy:\n  listen: 127.0.0.1:3\n  upstream: http://127.0.0.1:5\n"
            )),
            ["proxy"]
        );
    }
}
