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
    /// Listener settings in force (see [`started_with`]).
    listeners: Mutex<Option<String>>,
}

impl Issuers {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            metrics,
            background: Mutex::new(None),
            listeners: Mutex::new(None),
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
        );
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
            _ = hup_recv => "SIGHUP",
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
        let listeners = listeners(&config);
        issuers.build(&config).map(|b| (b, listeners))
    });
    match built {
        Ok(((authorizer, keys), listeners)) => {
            shared.install(authorizer);
            issuers.commit(keys);
            shared.metrics.config_reload(true);
            tracing::info!(reason, "configuration reloaded");
            let mut last = issuers.listeners.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_ref().is_some_and(|l| *l != listeners) {
                tracing::warn!(
                    "listen, forward_auth, proxy or drain settings changed: they apply only after a restart"
                );
            }
            *last = Some(listeners);
            true
        }
        Err(e) => {
            shared.metrics.config_reload(false);
            tracing::error!(reason, error = %e, "configuration reload rejected; keeping the running configuration");
            false
        }
    }
}

/// The settings a reload cannot apply (listeners are bound once, at start).
fn listeners(c: &Config) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        c.listen, c.forward_auth, c.proxy, c.drain_timeout
    )
}

/// Records the listener settings the process started with.
pub fn started_with(issuers: &Issuers, config: &Config) {
    *issuers.listeners.lock().unwrap_or_else(|p| p.into_inner()) = Some(listeners(config));
}

/// Modification time and length of the file behind `path` (following symlinks).
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
