//! The authorization pipeline: request → token → keys → verify → respond. Each step yields a
//! typed [`Deny`] through `?`; only `respond.rs` knows about status codes.

pub mod alg;
pub mod claims;
mod deny;
pub mod request;
pub mod respond;
pub mod token;
pub mod verify;

use std::{sync::Arc, time::Instant};

pub use deny::Deny;
pub use request::{AuthzRequest, Headers};
pub use respond::{Allowance, Denial, Responder};

use crate::{
    jwks::IssuerKeys,
    metrics::{Frontend, Metrics},
};
use claims::Claims;
use verify::Jws;

/// A verified token: who, and from which issuer.
#[derive(Debug, Clone)]
pub struct Grant {
    pub claims: Claims,
}

/// The outcome of one check, ready for a front end to encode.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Allowance),
    Deny(Denial),
}

/// The pipeline and everything it needs; shared by every front end.
pub struct Authorizer {
    issuers: Vec<Arc<IssuerKeys>>,
    responder: Responder,
    metrics: Arc<Metrics>,
}

impl Authorizer {
    pub fn new(issuers: Vec<Arc<IssuerKeys>>, responder: Responder, metrics: Arc<Metrics>) -> Self {
        Self {
            issuers,
            responder,
            metrics,
        }
    }

    /// Decides one request and records it in the metrics.
    pub async fn decide(&self, req: &AuthzRequest<'_>, frontend: Frontend) -> Decision {
        let started = Instant::now();
        let result = self.authorize(req).await;
        let m = self.metrics.frontend(frontend);
        m.duration.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(grant) => {
                m.allowed.inc();
                tracing::debug!(
                    request_id = req.request_id().unwrap_or("-"),
                    issuer = %grant.claims.iss,
                    "allow"
                );
                Decision::Allow(self.responder.allow(&grant))
            }
            Err(deny) => {
                m.denied(&deny).inc();
                tracing::debug!(
                    request_id = req.request_id().unwrap_or("-"),
                    reason = deny.label(),
                    "deny"
                );
                Decision::Deny(self.responder.deny(&deny))
            }
        }
    }

    /// The pipeline proper.
    pub async fn authorize(&self, req: &AuthzRequest<'_>) -> Result<Grant, Deny> {
        let token = token::extract(req)?;
        let jws = Jws::parse(token)?;
        let keys = self.issuer(&jws.iss).ok_or(Deny::UnknownIssuer)?;
        keys.verify_signature(&jws).await?;
        let claims = jws.check_claims(&keys.issuer, verify::now())?;
        Ok(Grant { claims })
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

    /// True when every issuer has usable keys.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|k| k.is_ready())
    }
}
