//! Route rules: which requests need which token. Rules match on host, path (exact, prefix or
//! regex) and method; the first match wins, else the default. A rule allows anonymously, requires
//! any valid token, or requires scopes and claim conditions, and may restrict issuers or override
//! audiences. Rules compile once at load; regexes use the `regex` crate (linear time, no
//! backtracking), so no request can make matching slow.

use std::collections::HashSet;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::{claims::Claims, request::AuthzRequest, Deny};

// === config ===

/// One entry of `rules:` in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for logs and metadata (defaults to `rules[N]`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// `authenticated` (default: any valid token), `anonymous` (no token needed) or `deny`.
    #[serde(default)]
    pub action: Action,
    /// Scopes the token must carry (from `scope` or `scp`, RFC 9068 §2.2.3, RFC 8693 §4.2).
    #[serde(default)]
    pub scopes: Option<ScopeConfig>,
    /// Conditions on claims, all of which must hold.
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
    /// Only tokens from these issuers (exact identifiers) are accepted on this route.
    #[serde(default)]
    pub issuers: Option<Vec<String>>,
    /// Accepted audiences on this route, replacing the issuer's `audiences`.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
}

/// What a request must look like for a rule to apply. Empty means "any".
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Host names (`:authority` without port), compared case-insensitively; `*.example.com`
    /// matches one or more leading labels.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP methods, e.g. `[GET, HEAD]`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path, without the query string.
    #[serde(default)]
    pub path: Option<PathMatch>,
}

/// Exactly one way of matching the path: `{exact: /p}`, `{prefix: /p}` or `{regex: "…"}`
/// (a `regex` crate expression, anchored at both ends).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Authenticated,
    Anonymous,
    Deny,
}

/// Scope requirements.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// Every one of these.
    #[serde(default)]
    pub all_of: Vec<String>,
    /// At least one of these (when non-empty).
    #[serde(default)]
    pub any_of: Vec<String>,
}

/// A condition on the claim at a JSON pointer (RFC 6901), e.g. `/realm_access/roles`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimCondition {
    pub pointer: String,
    /// The claim equals this JSON value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// The claim equals one of these values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// The claim is an array containing this value, or a string containing it as a
    /// space-separated word.
    #[serde(default)]
    pub contains: Option<Value>,
    /// The claim is present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

/// What happens when no rule matches.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    /// Any valid token (the default).
    #[default]
    Authenticated,
    /// Deny with 403.
    Deny,
    /// Allow without a token.
    Anonymous,
}

impl DefaultAction {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            DefaultAction::Authenticated => "authenticated",
            DefaultAction::Deny => "deny",
            DefaultAction::Anonymous => "anonymous",
        }
    }
}

// === compiled ===

/// A compiled rule.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    hosts: Vec<HostPattern>,
    methods: Vec<String>,
    path: Option<CompiledPath>,
    pub action: Action,
    all_scopes: Vec<String>,
    any_scopes: Vec<String>,
    claims: Vec<Condition>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
}

#[derive(Debug)]
enum HostPattern {
    Exact(String),
    /// `*.example.com` → `.example.com`
    Suffix(String),
}

#[derive(Debug)]
enum CompiledPath {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
struct Condition {
    pointer: String,
    test: Test,
}

#[derive(Debug)]
enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Contains(Value),
    Exists(bool),
}

/// All rules plus the default, compiled.
#[derive(Debug)]
pub struct Policy {
    routes: Vec<Route>,
    default: Route,
}

/// Why a rule did not compile (reported with its config path).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

fn err(field: String, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field,
        message: message.into(),
    }
}

impl Policy {
    /// Compiles `rules` and the default action; `issuers` are the configured issuer identifiers.
    pub fn compile(
        rules: &[RuleConfig],
        default: DefaultAction,
        issuers: &[&str],
    ) -> Result<Self, PolicyError> {
        let routes = rules
            .iter()
            .enumerate()
            .map(|(i, r)| Route::compile(r, &format!("rules[{i}]"), issuers))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = HashSet::new();
        for r in &routes {
            if !names.insert(r.name.as_str()) {
                return Err(err(
                    "rules".into(),
                    format!("two rules are named {:?}", r.name),
                ));
            }
        }
        let default = Route {
            name: "default".into(),
            hosts: Vec::new(),
            methods: Vec::new(),
            path: None,
            action: match default {
                DefaultAction::Authenticated => Action::Authenticated,
                DefaultAction::Deny => Action::Deny,
                DefaultAction::Anonymous => Action::Anonymous,
            },
            all_scopes: Vec::new(),
            any_scopes: Vec::new(),
            claims: Vec::new(),
            issuers: None,
            audiences: None,
        };
        Ok(Self { routes, default })
    }

    /// The first rule matching the request, else the default.
    pub fn route(&self, req: &AuthzRequest<'_>) -> &Route {
        let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
        let host = strip_port(req.host);
        self.routes
            .iter()
            .find(|r| r.matches(host, req.method, path))
            .unwrap_or(&self.default)
    }

    /// Every scope any rule requires (for RFC 9728 `scopes_supported`).
    pub fn scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .routes
            .iter()
            .flat_map(|r| r.all_scopes.iter().chain(&r.any_scopes).cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

// === impl Route ===

impl Route {
    fn compile(cfg: &RuleConfig, field: &str, issuers: &[&str]) -> Result<Self, PolicyError> {
        let name = cfg.name.clone().unwrap_or_else(|| field.to_owned());
        let hosts = cfg
            .matches
            .hosts
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') && !suffix.contains('*') => {
                        Ok(HostPattern::Suffix(suffix.to_owned()))
                    }
                    Some(_) => Err(err(
                        format!("{field}.match.hosts"),
                        format!("{h:?}: only a leading `*.` wildcard is supported"),
                    )),
                    None if !h.contains('*') => Ok(HostPattern::Exact(h)),
                    None => Err(err(
                        format!("{field}.match.hosts"),
                        format!("{h:?}: only a leading `*.` wildcard is supported"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        let methods = cfg
            .matches
            .methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        let path = match &cfg.matches.path {
            None => None,
            Some(p) => Some(compile_path(p, &format!("{field}.match.path"))?),
        };
        let (all_scopes, any_scopes) = match &cfg.scopes {
            Some(s) => (s.all_of.clone(), s.any_of.clone()),
            None => (Vec::new(), Vec::new()),
        };
        for s in all_scopes.iter().chain(&any_scopes) {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(err(
                    format!("{field}.scopes"),
                    format!("{s:?} is not a valid scope token (RFC 6749 §3.3)"),
                ));
            }
        }
        let claims = cfg
            .claims
            .iter()
            .enumerate()
            .map(|(j, c)| Condition::compile(c, &format!("{field}.claims[{j}]")))
            .collect::<Result<_, _>>()?;
        if let Some(list) = &cfg.issuers {
            for iss in list {
                if !issuers.contains(&iss.as_str()) {
                    return Err(err(
                        format!("{field}.issuers"),
                        format!("{iss:?} is not a configured issuer"),
                    ));
                }
            }
        }
        if cfg.audiences.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                format!("{field}.audiences"),
                "list at least one audience, or omit the key",
            ));
        }
        let requirements =
            !all_scopes.is_empty() || !any_scopes.is_empty() || !cfg.claims.is_empty();
        if cfg.action != Action::Authenticated
            && (requirements || cfg.issuers.is_some() || cfg.audiences.is_some())
        {
            return Err(err(
                field.to_owned(),
                "scopes, claims, issuers and audiences apply only to `action: authenticated`",
            ));
        }
        Ok(Route {
            name,
            hosts,
            methods,
            path,
            action: cfg.action,
            all_scopes,
            any_scopes,
            claims,
            issuers: cfg.issuers.clone(),
            audiences: cfg.audiences.clone(),
        })
    }

    fn matches(&self, host: &str, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
            && (self.hosts.is_empty()
                || self.hosts.iter().any(|h| match h {
                    HostPattern::Exact(e) => e.eq_ignore_ascii_case(host),
                    HostPattern::Suffix(s) => {
                        host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
                    }
                }))
            && match &self.path {
                None => true,
                Some(CompiledPath::Exact(p)) => p == path,
                Some(CompiledPath::Prefix(p)) => path.starts_with(p.as_str()),
                Some(CompiledPath::Regex(r)) => r.is_match(path),
            }
    }

    /// What the route requires, in words (for `explain`).
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.action {
            Action::Anonymous => "no token needed".to_owned(),
            Action::Deny => "always denied (403)".to_owned(),
            Action::Authenticated => "a valid token".to_owned(),
        }];
        if !self.all_scopes.is_empty() {
            parts.push(format!("all of scopes [{}]", self.all_scopes.join(" ")));
        }
        if !self.any_scopes.is_empty() {
            parts.push(format!("any of scopes [{}]", self.any_scopes.join(" ")));
        }
        if !self.claims.is_empty() {
            let c: Vec<String> = self
                .claims
                .iter()
                .map(|c| format!("{} {:?}", c.pointer, c.test))
                .collect();
            parts.push(format!("claims {}", c.join(", ")));
        }
        if let Some(i) = &self.issuers {
            parts.push(format!("issuers [{}]", i.join(", ")));
        }
        if let Some(a) = &self.audiences {
            parts.push(format!("audiences [{}]", a.join(", ")));
        }
        parts.join("; ")
    }

    /// May a token from `iss` be used on this route?
    pub fn accepts_issuer(&self, iss: &str) -> bool {
        self.issuers
            .as_ref()
            .is_none_or(|l| l.iter().any(|i| i == iss))
    }

    /// Checks scopes and claim conditions of a verified token.
    pub fn authorize(&self, claims: &Claims) -> Result<(), Deny> {
        if !self.all_scopes.is_empty() || !self.any_scopes.is_empty() {
            let granted = scopes(&claims.all);
            let has = |s: &String| granted.iter().any(|g| g == s);
            let all_ok = self.all_scopes.iter().all(has);
            let any_ok = self.any_scopes.is_empty() || self.any_scopes.iter().any(has);
            if !all_ok || !any_ok {
                return Err(Deny::InsufficientScope {
                    required: self.required_scope(),
                });
            }
        }
        for c in &self.claims {
            if !c.holds(&claims.all) {
                return Err(Deny::Forbidden {
                    rule: self.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// The `scope` attribute for an `insufficient_scope` challenge (RFC 6750 §3).
    /// RFC 6750 §3 reads `scope` as "all of these", so for `any_of` only the first alternative
    /// is named: the smallest set of scopes that would pass.
    fn required_scope(&self) -> String {
        let mut s = self.all_scopes.clone();
        if let Some(first) = self.any_scopes.first() {
            if !s.contains(first) {
                s.push(first.clone());
            }
        }
        s.join(" ")
    }
}

fn compile_path(p: &PathMatch, field: &str) -> Result<CompiledPath, PolicyError> {
    let starts_with_slash = |s: &str| {
        if s.starts_with('/') {
            Ok(())
        } else {
            Err(err(field.to_owned(), "a path starts with '/'"))
        }
    };
    match (&p.exact, &p.prefix, &p.regex) {
        (Some(e), None, None) => starts_with_slash(e).map(|()| CompiledPath::Exact(e.clone())),
        (None, Some(pre), None) => {
            starts_with_slash(pre).map(|()| CompiledPath::Prefix(pre.clone()))
        }
        (None, None, Some(r)) => regex::RegexBuilder::new(&format!("^(?:{r})$"))
            .size_limit(1 << 20)
            .build()
            .map(CompiledPath::Regex)
            .map_err(|e| err(format!("{field}.regex"), e.to_string())),
        _ => Err(err(
            field.to_owned(),
            "give exactly one of exact, prefix, regex",
        )),
    }
}

/// Scopes granted by a token: `scope` (space-separated string) or `scp` (string or array).
pub fn scopes(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => {
                out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    out
}

// === impl Condition ===

impl Condition {
    fn compile(c: &ClaimCondition, field: &str) -> Result<Self, PolicyError> {
        if !(c.pointer.is_empty() || c.pointer.starts_with('/')) {
            return Err(err(
                format!("{field}.pointer"),
                "a JSON pointer starts with '/' (RFC 6901), e.g. /realm_access/roles",
            ));
        }
        let tests = [
            c.equals.clone().map(Test::Equals),
            c.one_of.clone().map(Test::OneOf),
            c.contains.clone().map(Test::Contains),
            c.exists.map(Test::Exists),
        ];
        let mut set = tests.into_iter().flatten();
        let test = set.next().ok_or_else(|| {
            err(
                field.to_owned(),
                "give one of equals, one_of, contains, exists",
            )
        })?;
        if set.next().is_some() {
            return Err(err(
                field.to_owned(),
                "give only one of equals, one_of, contains, exists",
            ));
        }
        Ok(Condition {
            pointer: c.pointer.clone(),
            test,
        })
    }

    fn holds(&self, claims: &serde_json::Map<String, Value>) -> bool {
        let found = pointer(claims, &self.pointer);
        match (&self.test, found) {
            (Test::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Test::Equals(want), Some(v)) => v == want,
            (Test::OneOf(list), Some(v)) => list.contains(v),
            (Test::Contains(want), Some(Value::Array(items))) => items.contains(want),
            (Test::Contains(Value::String(want)), Some(Value::String(s))) => {
                s.split(' ').any(|w| w == want)
            }
            (Test::Contains(_), Some(_)) => false,
        }
    }
}

/// RFC 6901 lookup in a claim set (without cloning it into a `Value`).
pub fn pointer<'a>(claims: &'a serde_json::Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let rest = pointer.strip_prefix('/')?;
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let key = first.replace("~1", "/").replace("~0", "~");
    claims.get(&key)?.pointer(tail)
}

#[cfg(test)]
mod tests;
