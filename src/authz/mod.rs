//! The authorization pipeline: request → route → token → keys → verify → profile → policy →
//! respond. Each step yields a typed [`Deny`] through `?`; only `respond.rs` knows about status
//! codes, and front ends only translate [`Decision`] into their wire format.

pub mod alg;
pub mod cache;
pub mod claims;
mod deny;
pub mod metadata;
pub mod policy;
pub mod profile;
pub mod request;
pub mod resource;
pub mod respond;
pub mod token;
pub mod verify;

use std::{sync::Arc, time::Instant};

pub use deny::Deny;
pub use request::{AuthzRequest, Headers};
pub use respond::{Allowance, Denial, Identity, Responder};

use crate::{
    jwks::IssuerKeys,
    metrics::{Frontend, Metrics},
};
use cache::{TokenCache, Verified};
use policy::{Action, Policy};
use token::TokenSource;
use verify::Jws;

/// An allowed request: the verified token (none on an anonymous route) and the rule that matched.
#[derive(Debug, Clone)]
pub struct Grant {
    pub verified: Option<Arc<Verified>>,
    pub route: String,
    /// The query parameter that carried the token, removed before the request goes upstream.
    pub query_param: Option<String>,
}

/// The outcome of one check, ready for a front end to encode.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Forward upstream with these changes.
    Allow(Allowance),
    /// Answer the client directly: a denial, or a document jwt-authz serves itself (RFC 9728).
    Deny(Denial),
}

/// The pipeline and everything it needs; shared by every front end, replaced whole on reload.
pub struct Authorizer {
    issuers: Vec<Arc<IssuerKeys>>,
    policy: Policy,
    sources: Vec<TokenSource>,
    responder: Responder,
    cache: Option<TokenCache>,
    decision_log: DecisionLog,
    max_token_bytes: usize,
    metrics: Arc<Metrics>,
}

/// The level at which each decision is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionLog {
    Off,
    Trace,
    #[default]
    Debug,
    Info,
    Warn,
}

/// `detail` is the denial's description: what failed and which per-issuer setting would accept
/// the token — never the token or a claim value.
fn log_decision(
    level: DecisionLog,
    frontend: &str,
    reason: &str,
    route: &str,
    issuer: &str,
    request_id: &str,
    detail: &str,
) {
    let decision = if reason == "ok" { "allow" } else { "deny" };
    macro_rules! emit {
        ($lvl:ident) => {
            tracing::$lvl!(
                decision, reason, route, issuer, request_id, frontend, detail, "decision"
            )
        };
    }
    match level {
        DecisionLog::Off => {}
        DecisionLog::Trace => emit!(trace),
        DecisionLog::Debug => emit!(debug),
        DecisionLog::Info => emit!(info),
        DecisionLog::Warn => emit!(warn),
    }
}

impl Authorizer {
    pub fn new(
        issuers: Vec<Arc<IssuerKeys>>,
        policy: Policy,
        sources: Vec<TokenSource>,
        responder: Responder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            issuers,
            policy,
            sources,
            responder,
            cache: None,
            decision_log: DecisionLog::default(),
            max_token_bytes: verify::MAX_TOKEN_BYTES,
            metrics,
        }
    }

    /// Refuses tokens longer than this before decoding them.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// Enables the verified-token cache.
    pub fn with_cache(mut self, cache: Option<TokenCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Entries in the verified-token cache.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// Logs each decision at this level (`off` to disable).
    pub fn with_decision_log(mut self, level: DecisionLog) -> Self {
        self.decision_log = level;
        self
    }

    /// Decides one request and records it in the metrics and (if enabled) the log.
    pub async fn decide(&self, req: &AuthzRequest<'_>, frontend: Frontend) -> Decision {
        let started = Instant::now();
        let m = self.metrics.frontend(frontend);
        if let Some(doc) = self.metadata_request(req) {
            m.served.inc();
            return Decision::Deny(doc);
        }
        let route = self.policy.route(req);
        let result = self.authorize_on(req, route).await;
        m.duration.observe(started.elapsed().as_secs_f64());
        let (reason, issuer, detail) = match &result {
            Ok(g) => (
                "ok",
                g.verified.as_ref().map(|v| v.claims.iss.as_str()),
                None,
            ),
            Err(d) => (d.label(), None, Some(d.description())),
        };
        // Only bounded, non-secret fields: never the token, a cookie or a claim value.
        log_decision(
            self.decision_log,
            frontend.label(),
            reason,
            &route.name,
            issuer.unwrap_or("-"),
            req.request_id().unwrap_or("-"),
            detail.as_deref().unwrap_or(""),
        );
        match result {
            Ok(grant) => {
                m.allowed.inc();
                Decision::Allow(self.responder.allow(&grant))
            }
            Err(deny) => {
                m.denied(&deny).inc();
                Decision::Deny(self.responder.deny(&deny))
            }
        }
    }

    /// The pipeline proper.
    pub async fn authorize(&self, req: &AuthzRequest<'_>) -> Result<Grant, Deny> {
        self.authorize_on(req, self.policy.route(req)).await
    }

    async fn authorize_on(
        &self,
        req: &AuthzRequest<'_>,
        route: &policy::Route,
    ) -> Result<Grant, Deny> {
        match route.action {
            Action::Anonymous => {
                return Ok(Grant {
                    verified: None,
                    route: route.name.clone(),
                    query_param: None,
                })
            }
            Action::Deny => {
                return Err(Deny::Forbidden {
                    rule: route.name.clone(),
                })
            }
            Action::Authenticated => {}
        }
        let found = token::find(req, &self.sources)?;
        let (keys, verified) = self.verify(&found.token).await?;
        let claims = &verified.claims;
        if !route.accepts_issuer(&claims.iss) {
            return Err(Deny::IssuerNotAllowed);
        }
        let issuer = &keys.issuer;
        let audiences = route.audiences.as_deref().unwrap_or(&issuer.audiences);
        profile::check_with(
            issuer.profile,
            verified.typ.as_deref(),
            &claims.all,
            &issuer.id_token_claims,
            &issuer.required_claims,
        )?;
        // After the profile: "this is an ID token" says more than "wrong audience".
        verify::check_audience(claims, issuer, audiences)?;
        route.authorize(claims)?;
        Ok(Grant {
            verified: Some(verified),
            route: route.name.clone(),
            query_param: found.query_param.map(str::to_owned),
        })
    }

    /// Signature and lifetime: from the verified-token cache when this exact token was verified
    /// before by a key still in the set, else verified now (and cached).
    async fn verify(&self, token: &str) -> Result<(&Arc<IssuerKeys>, Arc<Verified>), Deny> {
        let key = self.cache.as_ref().map(|_| TokenCache::key(token));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if let Some(hit) = cache.get(key) {
                match self.issuer(&hit.claims.iss) {
                    Some(keys) if keys.has_key(hit.fingerprint) => {
                        verify::check_expiry(&hit.claims, &keys.issuer, verify::now())?;
                        self.metrics.cache_hit.inc();
                        return Ok((keys, hit));
                    }
                    // The key that verified it has left the set: verify afresh.
                    _ => cache.remove(key),
                }
            }
            self.metrics.cache_miss.inc();
        }
        let jws = Jws::parse_limited(token, self.max_token_bytes)?;
        let keys = self.issuer(&jws.iss).ok_or(Deny::UnknownIssuer)?;
        let fingerprint = keys.verify_signature(&jws).await?;
        let typ = jws.typ.clone();
        let claims = jws.into_claims(&keys.issuer, verify::now())?;
        let identity = Arc::new(self.responder.identity(&claims));
        let size = cache::estimate_size(&claims, typ.as_deref(), &identity);
        let verified = Arc::new(Verified {
            claims,
            typ,
            fingerprint,
            identity,
            size,
        });
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.insert(key, verified.clone());
        }
        Ok((keys, verified))
    }

    /// A GET for the RFC 9728 document, answered directly.
    fn metadata_request(&self, req: &AuthzRequest<'_>) -> Option<Denial> {
        let doc = self.responder.resource_metadata()?;
        let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
        (path == doc.path && (req.method == "GET" || req.method == "HEAD"))
            .then(|| self.responder.metadata_document())
            .flatten()
    }

    /// The issuer whose identifier equals `iss` exactly (no network call for unknown ones).
    fn issuer(&self, iss: &str) -> Option<&Arc<IssuerKeys>> {
        self.issuers.iter().find(|k| k.issuer.id == iss)
    }

    pub fn issuers(&self) -> &[Arc<IssuerKeys>] {
        &self.issuers
    }

    pub fn responder(&self) -> &Responder {
        &self.responder
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// True when every issuer has usable keys.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|k| k.is_ready())
    }
}
