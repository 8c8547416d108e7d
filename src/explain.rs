//! `jwt-authz explain`: why is this token allowed or denied? Walks the pipeline step by step —
//! header, issuer, discovery and keys (live, from the real issuer), signature, each claim check,
//! the profile, the route rule — then runs the real authorizer for the verdict and prints the
//! exact response Envoy would send. Output is for the operator's terminal, never for a log.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::Value;

use crate::{
    authz::{
        claims::{self, Claims},
        profile,
        request::{AuthzRequest, Headers},
        verify::{self, Jws},
    },
    config::Config,
    jwks::{keyset::Lookup, store::Cause},
    metrics::Metrics,
    reload::Issuers,
};

/// The request to evaluate the token against.
pub struct RequestSpec {
    pub method: String,
    pub host: String,
    pub path: String,
}

/// Explains the decision for `token` on `request`; returns the report and whether it is allowed.
pub async fn explain(
    config: &Config,
    token: &str,
    request: &RequestSpec,
) -> Result<(String, bool), String> {
    let issuers = Issuers::new(Arc::new(Metrics::new()));
    let (authorizer, _keys) = issuers.build(config).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let token = token.trim();
    let step = |out: &mut String, ok: Option<bool>, name: &str, detail: String| {
        let mark = match ok {
            Some(true) => "ok  ",
            Some(false) => "FAIL",
            None => "    ",
        };
        let _ = writeln!(out, "[{mark}] {name:<10} {detail}");
    };

    // 1. Header and claims, decoded without trusting them.
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    match parts.first().and_then(|h| decode(h)) {
        Some(h) => step(&mut out, None, "header", compact(&h)),
        None => step(&mut out, Some(false), "header", "not base64url JSON".into()),
    }
    if let Some(p) = parts.get(1).and_then(|p| decode(p)) {
        let pick = |k: &str| p.get(k).map(compact).unwrap_or_else(|| "-".into());
        step(
            &mut out,
            None,
            "claims",
            format!(
                "iss={} sub={} aud={} exp={} nbf={} iat={} scope={} client_id={}",
                pick("iss"),
                pick("sub"),
                pick("aud"),
                when(p.get("exp")),
                when(p.get("nbf")),
                when(p.get("iat")),
                p.get("scope")
                    .or(p.get("scp"))
                    .map(compact)
                    .unwrap_or_else(|| "-".into()),
                pick("client_id"),
            ),
        );
    }

    explain_steps(&authorizer, config, token, request, &mut out, step).await;

    // The verdict comes from the real pipeline, the same code that serves Envoy.
    let headers: HashMap<String, String> =
        [("authorization".to_owned(), format!("Bearer {token}"))]
            .into_iter()
            .collect();
    let req = AuthzRequest {
        method: &request.method,
        host: &request.host,
        path: &request.path,
        headers: Headers::Map(&headers),
    };
    // One evaluation; the response comes from the same Responder the front ends use.
    let result = authorizer.authorize(&req).await;
    let _ = writeln!(out);
    let allowed = match &result {
        Ok(grant) => {
            let a = authorizer.responder().allow(grant);
            let _ = writeln!(
                out,
                "verdict: ALLOW {} {}{}",
                request.method, request.host, request.path
            );
            for (k, v) in &a.identity.set {
                let _ = writeln!(out, "  upstream header {k}: {v}");
            }
            for k in &a.identity.remove {
                let _ = writeln!(out, "  upstream header {k}: removed");
            }
            true
        }
        Err(deny) => {
            let d = authorizer.responder().deny(deny);
            let _ = writeln!(
                out,
                "verdict: DENY ({}) — {}",
                deny.label(),
                deny.description()
            );
            let _ = writeln!(out, "  response: HTTP {}", d.http_status);
            for (k, v) in &d.headers {
                let _ = writeln!(out, "  {k}: {v}");
            }
            let _ = writeln!(out, "  body: {}", d.body);
            false
        }
    };
    Ok((out, allowed))
}

async fn explain_steps(
    authorizer: &crate::authz::Authorizer,
    config: &Config,
    token: &str,
    request: &RequestSpec,
    out: &mut String,
    step: impl Fn(&mut String, Option<bool>, &str, String),
) -> Option<()> {
    let headers = HashMap::new();
    let req = AuthzRequest {
        method: &request.method,
        host: &request.host,
        path: &request.path,
        headers: Headers::Map(&headers),
    };
    let route = authorizer.policy().route(&req);
    {
        step(
            out,
            None,
            "route",
            format!(
                "{} {}{} → rule {}: requires {}",
                request.method,
                request.host,
                request.path,
                route.name,
                route.describe()
            ),
        );
    }
    let jws = match Jws::parse(token) {
        Ok(j) => {
            step(
                out,
                Some(true),
                "format",
                format!("JWS, alg {}", j.alg.name()),
            );
            j
        }
        Err(d) => {
            step(out, Some(false), "format", d.description());
            return None;
        }
    };
    let Some(keys) = authorizer.issuers().iter().find(|k| k.issuer.id == jws.iss) else {
        let known: Vec<&str> = config.issuers.iter().map(|i| i.issuer.as_str()).collect();
        let near = known
            .iter()
            .find(|k| k.trim_end_matches('/') == jws.iss.trim_end_matches('/'));
        let hint = near.map_or(String::new(), |n| {
            format!(
                " (configured {n:?} differs only by a trailing slash: issuers must match exactly)"
            )
        });
        step(
            out,
            Some(false),
            "issuer",
            format!(
                "{:?} is not configured; configured: {known:?}{hint}",
                jws.iss
            ),
        );
        return None;
    };
    step(
        out,
        Some(true),
        "issuer",
        format!("{:?} matches a configured issuer", jws.iss),
    );
    if !keys.issuer.algorithms.contains(jws.alg) {
        step(
            out,
            Some(false),
            "algorithm",
            format!("{} is not in this issuer's `algorithms`", jws.alg.name()),
        );
        return None;
    }
    let report = keys.fetch(Cause::Scheduled).await;
    match (report, keys.current()) {
        (Some(r), Some(set)) if r.ok => {
            let kids: Vec<String> = set
                .keys()
                .iter()
                .map(|k| {
                    format!(
                        "{}/{}",
                        k.kid.as_deref().unwrap_or("(no kid)"),
                        k.alg.name()
                    )
                })
                .collect();
            let from = keys
                .jwks_uri()
                .map_or("static key set".to_owned(), |u| u.to_string());
            step(
                out,
                Some(true),
                "keys",
                format!(
                    "{} usable from {from}: {}",
                    set.keys().len(),
                    kids.join(", ")
                ),
            );
            for (kid, reason) in set.skipped() {
                step(
                    out,
                    None,
                    "",
                    format!(
                        "skipped {}: {}",
                        kid.as_deref().unwrap_or("(no kid)"),
                        reason.label()
                    ),
                );
            }
            match set.lookup(jws.kid.as_deref(), jws.alg) {
                Lookup::Candidates(c) => {
                    step(
                        out,
                        Some(true),
                        "key",
                        format!(
                            "{} candidate(s) for kid {} and {}",
                            c.len(),
                            kid(&jws),
                            jws.alg.name()
                        ),
                    );
                    let ok = c
                        .iter()
                        .any(|k| k.verify(jws.signing_input.as_bytes(), &jws.signature));
                    step(
                        out,
                        Some(ok),
                        "signature",
                        if ok {
                            "verified".into()
                        } else {
                            "does not verify with any candidate key".into()
                        },
                    );
                    if !ok {
                        return None;
                    }
                }
                Lookup::AlgMismatch => {
                    step(
                        out,
                        Some(false),
                        "key",
                        format!("kid {} exists but not for {}", kid(&jws), jws.alg.name()),
                    );
                    return None;
                }
                Lookup::Unknown => {
                    step(out, Some(false), "key", format!("no key with kid {} in the issuer's current key set (after a fresh fetch)", kid(&jws)));
                    return None;
                }
            }
        }
        _ => {
            let why = keys
                .last_error()
                .map_or("no keys".to_owned(), |e| e.to_string());
            step(out, Some(false), "keys", why);
            return None;
        }
    }
    let now = verify::now();
    let leeway = keys.issuer.leeway.as_secs_f64();
    let p = &jws.payload;
    let exp = p.get("exp").and_then(claims::numeric_date);
    step(
        out,
        Some(exp.is_some_and(|e| now < e + leeway)),
        "exp",
        match exp {
            Some(e) => format!("{} (leeway {}s)", relative(e - now), leeway),
            None => "missing or not a number".into(),
        },
    );
    if let Some(nbf) = p.get("nbf") {
        let nbf = claims::numeric_date(nbf);
        step(
            out,
            Some(nbf.is_some_and(|n| now + leeway >= n)),
            "nbf",
            nbf.map_or("not a number".into(), |n| relative(n - now)),
        );
    }
    let audiences = route
        .audiences
        .clone()
        .unwrap_or_else(|| keys.issuer.audiences.clone());
    let typ = jws.typ.clone();
    let claims = Claims {
        iss: jws.iss.clone(),
        sub: None,
        exp: exp.unwrap_or(0.0),
        all: jws.payload.clone(),
    };
    let aud = verify::check_audience(&claims, &keys.issuer, &audiences);
    step(
        out,
        Some(aud.is_ok()),
        "audience",
        format!(
            "accepted {audiences:?} (from claims {:?})",
            keys.issuer.audience_claims
        ),
    );
    let prof = profile::check_with(
        keys.issuer.profile,
        typ.as_deref(),
        &claims.all,
        &keys.issuer.id_token_claims,
        &keys.issuer.required_claims,
    );
    step(
        out,
        Some(prof.is_ok()),
        "profile",
        match &prof {
            Ok(()) => keys.issuer.profile.name().to_owned(),
            Err(d) => d.description(),
        },
    );
    let policy = route.authorize(&claims);
    step(
        out,
        Some(policy.is_ok()),
        "policy",
        match &policy {
            Ok(()) => format!("rule {} satisfied", route.name),
            Err(d) => d.description(),
        },
    );
    Some(())
}

fn kid(jws: &Jws<'_>) -> String {
    jws.kid
        .as_deref()
        .map_or("(none)".to_owned(), |k| format!("{k:?}"))
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn when(v: Option<&Value>) -> String {
    match v.and_then(claims::numeric_date) {
        Some(t) => format!("{t} ({})", relative(t - verify::now())),
        None => "-".into(),
    }
}

fn relative(secs: f64) -> String {
    let d = humantime::format_duration(std::time::Duration::from_secs(secs.abs() as u64));
    if secs >= 0.0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}
