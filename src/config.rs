//! Typed configuration: the YAML file, merged with command-line flags, validated once at start.
//! Everything downstream receives parsed types (URLs, durations, algorithm sets), never raw strings;
//! an invalid configuration is reported with the field that is wrong and what to do about it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;
use url::Url;

use crate::authz::{
    alg::{Alg, AlgSet},
    policy::{DefaultAction, Policy, RuleConfig},
    profile::Profile,
    token::TokenSource,
};

/// Why a configuration was rejected. The message names the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration, as written in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listen: Listen,
    /// `realm` of the RFC 6750 §3 `WWW-Authenticate: Bearer` challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// How long a SIGTERM waits for in-flight checks before the process exits.
    #[serde(default = "default_drain", with = "humantime_serde")]
    pub drain_timeout: Duration,
    #[serde(default)]
    pub upstream_headers: UpstreamHeaders,
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Where tokens are looked for, in order (default: the `Authorization` header only).
    #[serde(default = "default_sources")]
    pub token_sources: Vec<TokenSource>,
    /// Route rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// What happens when no rule matches (default: any valid token).
    #[serde(default)]
    pub default_action: DefaultAction,
    /// RFC 9728 protected resource metadata; enables `/.well-known/oauth-protected-resource` and
    /// `resource_metadata` in challenges.
    #[serde(default)]
    pub protected_resource: Option<ProtectedResourceConfig>,
    /// Longest token accepted, in bytes (longer ones are refused before any decoding).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Level at which every decision is logged (reason, route, issuer, x-request-id; never a
    /// token): off, trace, debug (default), info, warn.
    #[serde(default)]
    pub decision_log: crate::authz::DecisionLog,
    /// The verified-token cache (on by default; `max_entries: 0` turns it off).
    #[serde(default)]
    pub token_cache: crate::authz::cache::CacheConfig,
    /// Envoy dynamic metadata key under the ext_authz filter's namespace
    /// (`envoy.filters.http.ext_authz`) where verified claims are published.
    #[serde(default = "default_metadata_key")]
    pub metadata_key: String,
    /// Which verified claims go under `claims` in that metadata: `all` (default), `none`, or a
    /// list of claim names.
    #[serde(default)]
    pub metadata_claims: crate::authz::metadata::MetadataClaims,
    /// The HTTP forward-auth endpoint (nginx `auth_request`, Traefik `forwardAuth`, Envoy HTTP
    /// ext_authz). Off unless configured.
    #[serde(default)]
    pub forward_auth: Option<crate::http::forward_auth::ForwardAuthConfig>,
    /// The reverse proxy in front of the app (sidecar pattern). Off unless configured.
    #[serde(default)]
    pub proxy: Option<crate::http::proxy::ProxyConfig>,
}

/// Listener addresses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default = "default_grpc")]
    pub grpc: SocketAddr,
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Also serve gRPC on this Unix domain socket (Envoy and a sidecar in one pod skip TCP).
    #[serde(default)]
    pub grpc_uds: Option<PathBuf>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            grpc: default_grpc(),
            admin: default_admin(),
            grpc_uds: None,
        }
    }
}

/// Request headers set on allowed requests (client-sent copies are always removed).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamHeaders {
    #[serde(default = "default_sub_header")]
    pub subject: String,
    #[serde(default = "default_iss_header")]
    pub issuer: String,
    /// More claims to pass upstream, each to its own header.
    #[serde(default)]
    pub claims: Vec<ClaimHeader>,
    /// A header holding the whole verified payload as base64url(JSON).
    #[serde(default)]
    pub payload: Option<String>,
    /// Remove `Authorization` from the upstream request once the token is verified.
    #[serde(default)]
    pub remove_authorization: bool,
}

/// One claim → header mapping.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeader {
    /// A claim name (`email`) or a JSON pointer (`/realm_access/roles`).
    pub claim: String,
    pub header: String,
}

impl Default for UpstreamHeaders {
    fn default() -> Self {
        Self {
            subject: default_sub_header(),
            issuer: default_iss_header(),
            claims: Vec::new(),
            payload: None,
            remove_authorization: false,
        }
    }
}

/// `protected_resource:` (RFC 9728 §2).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceConfig {
    /// The resource identifier (an https URL without fragment, RFC 9728 §1.2), exactly as
    /// clients use it.
    pub resource: String,
    /// Defaults to every configured issuer.
    #[serde(default)]
    pub authorization_servers: Option<Vec<String>>,
    /// Defaults to every scope the rules require.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub resource_documentation: Option<Url>,
}

/// One trusted authorization server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier, compared character for character with `iss` (RFC 7519 §4.1.1).
    pub issuer: String,
    /// Accepted audiences: a token's `aud` must contain at least one (RFC 7519 §4.1.3).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where to fetch metadata from, when not `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<Url>,
    /// Fetch keys from here and skip discovery (e.g. an in-cluster address).
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    /// A static JWKS file (air-gapped setups): no network at all for this issuer.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A static JWKS given inline in the config (a JSON object with `keys`).
    #[serde(default)]
    pub jwks_inline: Option<serde_json::Value>,
    /// PEM bundle of extra CA certificates trusted for this issuer's metadata and JWKS (private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where to keep the last good JWKS, loaded at start if the provider is unreachable.
    #[serde(default)]
    pub cache_file: Option<PathBuf>,
    /// Signature algorithms accepted from this issuer (RFC 8725 §3.1: never taken from the token).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How often the key set is refreshed in the background; also the upper bound on a
    /// `Cache-Control: max-age` the JWKS response asks for.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Lower bound on the refresh period, whatever `Cache-Control` says.
    #[serde(default = "default_min_refresh", with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// After an unknown-`kid` refetch, further ones wait this long.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub unknown_kid_cooldown: Duration,
    /// How long a request may wait for an in-flight key fetch before it is denied.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
    /// Keys older than this (because refreshes keep failing) are no longer trusted: 503.
    #[serde(default = "default_max_stale", with = "humantime_serde")]
    pub max_stale: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest discovery or JWKS response accepted, in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_response_bytes: usize,
    /// Permit `http://` for a non-loopback issuer or `jwks_uri` (never do this in production).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// `rfc9068` (default): `typ: at+jwt` and the RFC 9068 claims are required; `legacy`: any
    /// signed JWT with `exp` and an audience (for providers that issue plain JWT access tokens).
    #[serde(default)]
    pub profile: Profile,
    /// Claims that hold the audience, first present wins (default `[aud]`; Cognito: `[client_id]`).
    #[serde(default = "default_audience_claims")]
    pub audience_claims: Vec<String>,
    /// Claims that must be present with exactly these values, e.g. `{token_use: access}` for
    /// Cognito (whose ID tokens otherwise look like access tokens).
    #[serde(default)]
    pub required_claims: serde_json::Map<String, serde_json::Value>,
    /// Claims whose presence marks an OpenID Connect ID token, refused as an access token
    /// (default `[nonce, at_hash, c_hash]`; Keycloak ≤ 24 puts `nonce` in access tokens).
    #[serde(default = "default_id_token_claims")]
    pub id_token_claims: Vec<String>,
}

fn default_sources() -> Vec<TokenSource> {
    vec![TokenSource::Authorization]
}
fn default_metadata_key() -> String {
    "jwt_authz".into()
}
fn default_audience_claims() -> Vec<String> {
    vec!["aud".into()]
}
fn default_max_token_bytes() -> usize {
    crate::authz::verify::MAX_TOKEN_BYTES
}
fn default_id_token_claims() -> Vec<String> {
    ["nonce", "at_hash", "c_hash"].map(String::from).to_vec()
}
fn default_realm() -> String {
    "jwt-authz".into()
}
fn default_drain() -> Duration {
    Duration::from_secs(10)
}
fn default_grpc() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9191))
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_sub_header() -> String {
    "x-jwt-sub".into()
}
fn default_iss_header() -> String {
    "x-jwt-iss".into()
}
fn default_algorithms() -> Vec<String> {
    Alg::DEFAULT.iter().map(|a| a.name().to_string()).collect()
}
fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_cooldown() -> Duration {
    Duration::from_secs(10)
}
fn default_max_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_stale() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_bytes() -> usize {
    1 << 20
}

impl IssuerConfig {
    /// An issuer with every setting at its default.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            discovery_url: None,
            jwks_uri: None,
            jwks_file: None,
            jwks_inline: None,
            ca_file: None,
            cache_file: None,
            algorithms: default_algorithms(),
            leeway: default_leeway(),
            refresh_interval: default_refresh(),
            min_refresh_interval: default_min_refresh(),
            unknown_kid_cooldown: default_cooldown(),
            max_wait: default_max_wait(),
            max_stale: default_max_stale(),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            max_response_bytes: default_max_bytes(),
            allow_insecure_http: false,
            profile: Profile::default(),
            audience_claims: default_audience_claims(),
            required_claims: serde_json::Map::new(),
            id_token_claims: default_id_token_claims(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::default(),
            realm: default_realm(),
            drain_timeout: default_drain(),
            upstream_headers: UpstreamHeaders::default(),
            issuers: Vec::new(),
            token_sources: default_sources(),
            rules: Vec::new(),
            default_action: DefaultAction::default(),
            protected_resource: None,
            metadata_key: default_metadata_key(),
            metadata_claims: Default::default(),
            token_cache: Default::default(),
            decision_log: Default::default(),
            max_token_bytes: default_max_token_bytes(),
            forward_auth: None,
            proxy: None,
        }
    }
}

impl Config {
    /// Reads and parses a YAML file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<inline>".into(),
            message: e.to_string(),
        })
    }

    /// Checks every field and compiles issuers, rules and response settings.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        if self.issuers.is_empty() {
            return Err(invalid(
                "issuers",
                "no issuer configured: add one under `issuers:` in the config file, or pass \
                 --issuer URL --audience AUD",
            ));
        }
        check_realm(&self.realm)?;
        let mut names = vec![
            (
                "upstream_headers.subject".to_owned(),
                &self.upstream_headers.subject,
            ),
            (
                "upstream_headers.issuer".to_owned(),
                &self.upstream_headers.issuer,
            ),
        ];
        for (i, c) in self.upstream_headers.claims.iter().enumerate() {
            names.push((format!("upstream_headers.claims[{i}].header"), &c.header));
        }
        if let Some(p) = &self.upstream_headers.payload {
            names.push(("upstream_headers.payload".to_owned(), p));
        }
        let mut seen_headers = std::collections::HashSet::new();
        for (field, name) in names {
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    field,
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
            let lower = name.to_ascii_lowercase();
            if [
                "authorization",
                "cookie",
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
            ]
            .contains(&lower.as_str())
            {
                return Err(invalid(field, format!("{name:?} cannot carry identity")));
            }
            if !seen_headers.insert(lower) {
                return Err(invalid(field, format!("{name:?} is used twice")));
            }
        }
        if self.token_sources.is_empty() {
            return Err(invalid(
                "token_sources",
                "list at least one source, e.g. [{type: authorization}]",
            ));
        }
        if !(256..=1 << 20).contains(&self.max_token_bytes) {
            return Err(invalid(
                "max_token_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if self.metadata_key.is_empty() {
            return Err(invalid("metadata_key", "must not be empty"));
        }
        let mut seen = std::collections::HashSet::new();
        let issuers = self
            .issuers
            .iter()
            .enumerate()
            .map(|(i, cfg)| {
                let issuer = Issuer::parse(cfg, &format!("issuers[{i}]"))?;
                if !seen.insert(cfg.issuer.clone()) {
                    return Err(invalid(
                        format!("issuers[{i}].issuer"),
                        format!(
                            "{:?} is configured twice; each issuer must appear once",
                            cfg.issuer
                        ),
                    ));
                }
                Ok(issuer)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<&str> = issuers.iter().map(|i| i.id.as_str()).collect();
        let policy = Policy::compile(&self.rules, self.default_action, &ids)
            .map_err(|e| invalid(e.field, e.message))?;
        if let Some(pr) = &self.protected_resource {
            let url = Url::parse(&pr.resource).map_err(|e| {
                invalid(
                    "protected_resource.resource",
                    format!("{:?} is not a URL: {e}", pr.resource),
                )
            })?;
            if url.fragment().is_some() || !matches!(url.scheme(), "https" | "http") {
                return Err(invalid(
                    "protected_resource.resource",
                    "must be an https URL without a fragment (RFC 9728 §1.2)",
                ));
            }
        }
        Ok(Validated { issuers, policy })
    }
}

/// A configuration that passed validation, with its parts compiled.
#[derive(Debug)]
pub struct Validated {
    pub issuers: Vec<Issuer>,
    pub policy: Policy,
}

fn check_realm(realm: &str) -> Result<(), ConfigError> {
    // RFC 6750 §3: realm is a quoted-string; keep it to printable ASCII without quotes/backslashes
    // so it can never break the header.
    if realm.is_empty()
        || !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(invalid(
            "realm",
            "must be non-empty printable ASCII without '\"' or '\\'",
        ));
    }
    Ok(())
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Metadata at this URL names the `jwks_uri` (OIDC Discovery §4, RFC 8414 §3).
    Discover(Vec<Url>),
    /// Keys fetched straight from this URL.
    JwksUri(Url),
    /// A fixed JWKS document (from `jwks_file` or `jwks_inline`), never refreshed from a network.
    Static(Arc<[u8]>),
}

/// A validated issuer configuration.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub id: String,
    pub audiences: Vec<String>,
    pub source: KeySource,
    pub algorithms: AlgSet,
    pub leeway: Duration,
    pub refresh_interval: Duration,
    pub min_refresh_interval: Duration,
    /// PEM bundle of extra trusted CAs.
    pub ca_pem: Option<Vec<u8>>,
    pub cache_file: Option<PathBuf>,
    pub unknown_kid_cooldown: Duration,
    pub max_wait: Duration,
    pub max_stale: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_response_bytes: usize,
    pub allow_insecure_http: bool,
    pub profile: Profile,
    pub audience_claims: Vec<String>,
    pub required_claims: serde_json::Map<String, serde_json::Value>,
    pub id_token_claims: Vec<String>,
}

impl Issuer {
    fn parse(cfg: &IssuerConfig, field: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(&cfg.issuer).map_err(|e| {
            invalid(
                format!("{field}.issuer"),
                format!("{:?} is not a URL ({e}); use the exact `iss` value your provider puts in tokens", cfg.issuer),
            )
        })?;
        if url.query().is_some() || url.fragment().is_some() {
            // OIDC Discovery §2 / RFC 8414 §2: the issuer has no query or fragment.
            return Err(invalid(
                format!("{field}.issuer"),
                "an issuer identifier has no query or fragment component",
            ));
        }
        check_scheme(&url, cfg.allow_insecure_http, &format!("{field}.issuer"))?;
        if cfg.audiences.is_empty() {
            return Err(invalid(
                format!("{field}.audiences"),
                "at least one audience is required (the identifier of this API that tokens carry in `aud`); RFC 9068 §4 requires the audience check",
            ));
        }
        let mut algorithms = AlgSet::EMPTY;
        for name in &cfg.algorithms {
            let alg = Alg::from_name(name).ok_or_else(|| {
                invalid(
                    format!("{field}.algorithms"),
                    format!(
                        "{name:?} is not supported; choose from {} (`none` and HS* are never accepted, RFC 8725 §3.1)",
                        Alg::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            algorithms.insert(alg);
        }
        if algorithms.is_empty() {
            return Err(invalid(
                format!("{field}.algorithms"),
                "list at least one algorithm",
            ));
        }
        let source = Self::key_source(cfg, &url, &algorithms, field)?;
        for (name, d) in [
            ("refresh_interval", cfg.refresh_interval),
            ("connect_timeout", cfg.connect_timeout),
            ("request_timeout", cfg.request_timeout),
            ("max_wait", cfg.max_wait),
            ("max_stale", cfg.max_stale),
        ] {
            if d.is_zero() {
                return Err(invalid(
                    format!("{field}.{name}"),
                    "must be greater than zero",
                ));
            }
        }
        if cfg.min_refresh_interval > cfg.refresh_interval {
            return Err(invalid(
                format!("{field}.min_refresh_interval"),
                "must not be greater than refresh_interval",
            ));
        }
        if cfg.max_stale <= cfg.refresh_interval {
            return Err(invalid(
                format!("{field}.max_stale"),
                format!(
                    "must be longer than refresh_interval ({}), or keys would expire between two healthy refreshes",
                    humantime::format_duration(cfg.refresh_interval)
                ),
            ));
        }
        let ca_pem = match &cfg.ca_file {
            None => None,
            Some(path) => {
                let pem = read_bounded(path, 1 << 20).map_err(|e| {
                    invalid(
                        format!("{field}.ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
                    return Err(invalid(
                        format!("{field}.ca_file"),
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                Some(pem)
            }
        };
        if cfg.audience_claims.is_empty() {
            return Err(invalid(
                format!("{field}.audience_claims"),
                "name at least one claim, e.g. [aud]",
            ));
        }
        if cfg.max_response_bytes < 1024 {
            return Err(invalid(
                format!("{field}.max_response_bytes"),
                "must be at least 1024 bytes",
            ));
        }
        Ok(Self {
            id: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            source,
            algorithms,
            leeway: cfg.leeway,
            refresh_interval: cfg.refresh_interval,
            min_refresh_interval: cfg.min_refresh_interval,
            ca_pem,
            cache_file: cfg.cache_file.clone(),
            unknown_kid_cooldown: cfg.unknown_kid_cooldown,
            max_wait: cfg.max_wait,
            max_stale: cfg.max_stale,
            connect_timeout: cfg.connect_timeout,
            request_timeout: cfg.request_timeout,
            max_response_bytes: cfg.max_response_bytes,
            allow_insecure_http: cfg.allow_insecure_http,
            profile: cfg.profile,
            audience_claims: cfg.audience_claims.clone(),
            required_claims: cfg.required_claims.clone(),
            id_token_claims: cfg.id_token_claims.clone(),
        })
    }
}

impl Issuer {
    /// Discovery, an explicit `jwks_uri`, or a static key set — exactly one.
    fn key_source(
        cfg: &IssuerConfig,
        issuer: &Url,
        algorithms: &AlgSet,
        field: &str,
    ) -> Result<KeySource, ConfigError> {
        let set = [
            cfg.jwks_uri.is_some(),
            cfg.jwks_file.is_some(),
            cfg.jwks_inline.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set > 1 || (set == 1 && cfg.discovery_url.is_some()) {
            return Err(invalid(
                field,
                "set at most one of discovery_url, jwks_uri, jwks_file, jwks_inline",
            ));
        }
        let static_doc = match (&cfg.jwks_file, &cfg.jwks_inline) {
            (Some(path), _) => Some(read_bounded(path, cfg.max_response_bytes).map_err(|e| {
                invalid(
                    format!("{field}.jwks_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
            (None, Some(doc)) => Some(doc.to_string().into_bytes()),
            (None, None) => None,
        };
        if let Some(doc) = static_doc {
            crate::jwks::KeySet::parse(&doc, *algorithms).map_err(|e| {
                invalid(
                    format!(
                        "{field}.{}",
                        if cfg.jwks_file.is_some() {
                            "jwks_file"
                        } else {
                            "jwks_inline"
                        }
                    ),
                    e.to_string(),
                )
            })?;
            return Ok(KeySource::Static(doc.into()));
        }
        Ok(match (&cfg.jwks_uri, &cfg.discovery_url) {
            (Some(uri), _) => {
                check_scheme(uri, cfg.allow_insecure_http, &format!("{field}.jwks_uri"))?;
                KeySource::JwksUri(uri.clone())
            }
            (None, Some(d)) => {
                check_scheme(
                    d,
                    cfg.allow_insecure_http,
                    &format!("{field}.discovery_url"),
                )?;
                KeySource::Discover(vec![d.clone()])
            }
            (None, None) => KeySource::Discover(crate::jwks::discovery::metadata_urls(issuer)),
        })
    }
}

/// Reads a regular file of at most `limit` bytes (never `/dev/zero` or a multi-gigabyte file).
fn read_bounded(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

/// `https` is required, except for loopback hosts (local development and tests) or when the
/// operator explicitly allows plain HTTP (RFC 8414 §2 requires https issuers; RFC 8725 §3.10).
fn check_scheme(url: &Url, allow_http: bool, field: &str) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(invalid(
            field,
            format!(
                "{} uses plain http; use https, or set allow_insecure_http: true on this issuer in a config file if the network is trusted",
                url.as_str().trim_end_matches('/')
            ),
        )),
        other => Err(invalid(field, format!("scheme {other:?} is not supported; use https"))),
    }
}

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys_naming_them() {
        let err = Config::from_yaml("issuers: []\nbogus: 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn requires_an_issuer() {
        let err = Config::default().validate().unwrap_err();
        assert!(err.to_string().starts_with("issuers:"), "{err}");
    }

    #[test]
    fn parses_durations_and_algorithms() {
        let cfg = Config::from_yaml(
            "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n  leeway: 5s\n  algorithms: [ES256]\n",
        )
        .unwrap();
        let issuers = cfg.validate().unwrap().issuers;
        assert_eq!(issuers[0].leeway, Duration::from_secs(5));
        assert!(issuers[0].algorithms.contains(Alg::ES256));
        assert!(!issuers[0].algorithms.contains(Alg::RS256));
    }

    #[test]
    fn rejects_hs256_and_none_in_allowlist() {
        for alg in ["HS256", "none"] {
            let cfg = Config::from_yaml(&format!(
                "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n  algorithms: [{alg}]\n"
            ))
            .unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("issuers[0].algorithms"), "{err}");
        }
    }

    #[test]
    fn rejects_plain_http_for_remote_issuer_but_allows_loopback() {
        let remote =
            Config::from_yaml("issuers:\n- issuer: http://idp.example\n  audiences: [a]\n")
                .unwrap();
        assert!(remote
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allow_insecure_http"));
        let local =
            Config::from_yaml("issuers:\n- issuer: http://127.0.0.1:8080/x\n  audiences: [a]\n")
                .unwrap();
        assert!(local.validate().is_ok());
    }

    #[test]
    fn explicit_jwks_uri_skips_discovery() {
        let cfg = Config::from_yaml(
            "issuers:\n- issuer: https://idp.example\n  audiences: [a]\n  jwks_uri: https://keys.internal/jwks\n",
        )
        .unwrap();
        let issuer = &cfg.validate().unwrap().issuers[0];
        assert_eq!(
            issuer.source,
            KeySource::JwksUri(Url::parse("https://keys.internal/jwks").unwrap())
        );
    }
}
