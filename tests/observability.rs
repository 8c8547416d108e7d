//! Observability as an operator meets it: after scripted traffic, `/metrics` holds exactly the
//! families, label sets and label values README's metrics table documents; no label value ever
//! comes from a request; and logs captured at trace level — every crate, hyper, h2, tonic and
//! reqwest included — on every path a credential travels hold none of them.

mod support;

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    io,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use jwt_authz::{
    authz::{token::TokenSource, Deny},
    config::{Config, IssuerConfig},
    dev::SigningKey,
    jwks::fetch::FetchError,
};
use serde_json::json;
use support::*;
use tracing_subscriber::util::SubscriberInitExt as _;

const AUD: &str = "https://api.test";

// === /metrics ===

/// One sample of the text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` body.
struct Scrape {
    /// Family name → `# TYPE`.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                samples.push(parse_sample(line));
            }
        }
        Self { types, samples }
    }

    /// The family a sample belongs to (`_bucket`, `_sum`, `_count` of a histogram stripped).
    fn family(&self, sample: &str) -> String {
        if self.types.contains_key(sample) {
            return sample.to_owned();
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find(|base| self.types.get(*base).is_some_and(|t| t == "histogram"))
            .unwrap_or_else(|| panic!("sample {sample} belongs to no # TYPE family"))
            .to_owned()
    }

    /// The value of the sample with exactly these labels (0 if absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map_or(0.0, |s| s.value)
    }

    /// Every value label `label` takes in family `family`.
    fn values(&self, family: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|s| self.family(&s.name) == family)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').expect("name{labels} value");
    let value = value.parse().expect("a float value");
    let Some((name, labels)) = head.split_once('{') else {
        return Sample {
            name: head.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let mut out = BTreeMap::new();
    let mut chars = labels.strip_suffix('}').expect("closing brace").chars();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(other) => val.push(other),
                    None => panic!("dangling escape in {line}"),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), val);
        if chars.clone().next() == Some(',') {
            chars.next();
        }
    }
    Sample {
        name: name.to_owned(),
        labels: out,
        value,
    }
}

/// One row of README's metrics table.
#[derive(Debug)]
struct Documented {
    kind: String,
    /// Label names, with the values given in parentheses after a name, if any.
    labels: BTreeMap<String, Option<BTreeSet<String>>>,
    /// The `code` spans of the meaning column that are not label names: documented values.
    meaning_codes: BTreeSet<String>,
}

/// The text between backticks.
fn code_spans(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// README's "Admin endpoints and metrics" table: metric name → documented type and labels.
fn readme_metrics() -> BTreeMap<String, Documented> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut table = BTreeMap::new();
    for row in readme.lines().filter(|l| l.starts_with("| `jwt_authz_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [_, name, kind, labels, meaning, _] = cells[..] else {
            panic!("a metrics table row has four cells: {row}");
        };
        let mut documented = BTreeMap::new();
        for part in labels.split(", ").filter(|p| !p.is_empty()) {
            let name = code_spans(part)[0].to_owned();
            let values = part.split_once('(').map(|(_, v)| {
                v.trim_end_matches(')')
                    .split('/')
                    .map(str::to_owned)
                    .collect()
            });
            documented.insert(name, values);
        }
        // The meaning column's code spans are label values, once the label names are left out.
        let meaning_codes = code_spans(meaning)
            .into_iter()
            .filter(|c| !documented.contains_key(*c))
            .map(str::to_owned)
            .collect();
        table.insert(
            code_spans(name)[0].to_owned(),
            Documented {
                kind: kind.to_owned(),
                labels: documented,
                meaning_codes,
            },
        );
    }
    assert!(!table.is_empty(), "README has no metrics table");
    table
}

fn set<I: IntoIterator<Item = S>, S: ToString>(items: I) -> BTreeSet<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

/// Two issuers: `a` (kid k1) with a long unknown-kid cooldown so a second refetch is rate
/// limited, and whose JWKS also carries two entries jwt-authz must skip (`oct`, `use: enc`);
/// and `b` (kid k2), whose provider a test can break.
struct World {
    a: TestIssuer,
    b: TestIssuer,
    key_a: SigningKey,
    app: Running,
    client: Checker,
}

impl World {
    async fn start(token_sources: Vec<TokenSource>) -> Self {
        let key_a = SigningKey::generate(Alg::ES256, Some("k1"));
        let key_b = SigningKey::generate(Alg::ES256, Some("k2"));
        let a = TestIssuer::start_at("/a", &[&key_a]).await;
        let b = TestIssuer::start_at("/b", &[&key_b]).await;
        let mut keys = vec![key_a.public_jwk()];
        keys.push(json!({"kty": "oct", "kid": "shared-secret", "k": "c2VjcmV0"}));
        let mut for_encryption = key_a.public_jwk();
        for_encryption["kid"] = json!("enc-1");
        for_encryption["use"] = json!("enc");
        keys.push(for_encryption);
        a.set_raw_keys(keys);
        let mut config_a: IssuerConfig = issuer_config(&a.issuer, AUD);
        config_a.unknown_kid_cooldown = Duration::from_secs(300);
        let mut config = Config::default();
        config.listen.grpc = "127.0.0.1:0".parse().unwrap();
        config.listen.admin = "127.0.0.1:0".parse().unwrap();
        config.issuers = vec![config_a, issuer_config(&b.issuer, AUD)];
        config.token_sources = token_sources;
        let app = Running::start_config(config).await;
        app.wait_ready().await;
        let client = app.client().await;
        World {
            a,
            b,
            key_a,
            app,
            client,
        }
    }

    fn token_a(&self, sub: &str) -> String {
        self.key_a.mint(&self.a.claims(AUD, sub))
    }

    /// A token from issuer `b` signed by a key `b` does not publish: checking it refetches b's
    /// keys, and with `b` answering 500 that refetch is a refresh failure.
    async fn fail_a_refresh_of_b(&self) -> String {
        self.b.script(|s| s.jwks_status = 500);
        let stranger = SigningKey::generate(Alg::ES256, Some("not-published"));
        let token = stranger.mint(&self.b.claims(AUD, "bob"));
        let o = self.client.bearer(&token).await;
        assert_eq!(o.http_status, 401, "{o:?}");
        token
    }
}

#[tokio::test]
async fn metrics_after_scripted_traffic_are_exactly_the_documented_families_and_labels() {
    let w = World::start(vec![TokenSource::Authorization]).await;
    let c = &w.client;
    // allow, then the same token again from the verified-token cache
    let token = w.token_a("alice");
    assert!(c.bearer(&token).await.allowed());
    assert!(c.bearer(&token).await.allowed());
    // several deny reasons
    assert_eq!(c.headers(&[]).await.http_status, 401); // missing_token
    let o = c.headers(&[("authorization", "Bearer a b")]).await;
    assert_eq!(o.http_status, 400); // invalid_request
    assert_eq!(c.bearer("not.a.jwt").await.http_status, 401); // malformed
    let mut claims = w.a.claims(AUD, "alice");
    claims["exp"] = json!(now() - 600);
    assert_eq!(c.bearer(&w.key_a.mint(&claims)).await.http_status, 401); // expired
    let other_audience = w.key_a.mint(&w.a.claims("https://other.test", "alice"));
    assert_eq!(c.bearer(&other_audience).await.http_status, 401); // bad_audience
    let impostor = SigningKey::generate(Alg::ES256, Some("k1"));
    let forged = impostor.mint(&w.a.claims(AUD, "alice"));
    assert_eq!(c.bearer(&forged).await.http_status, 401); // bad_signature
                                                          // unknown kids: one refetch performed, the next within the cooldown rate limited
    let jwks_before = w.a.jwks_requests();
    for kid in ["rotated-1", "rotated-2"] {
        let unknown = SigningKey::generate(Alg::ES256, Some(kid));
        let o = c.bearer(&unknown.mint(&w.a.claims(AUD, "alice"))).await;
        assert_eq!(o.http_status, 401, "{o:?}");
    }
    assert_eq!(w.a.jwks_requests(), jwks_before + 1);
    // a refresh failure at issuer b
    w.fail_a_refresh_of_b().await;

    let scrape = Scrape::parse(&w.app.metrics().await);
    let readme = readme_metrics();

    // The families are exactly the documented ones, with the documented types.
    let exported: BTreeMap<&String, &String> = scrape.types.iter().collect();
    let documented: BTreeMap<&String, &String> = readme.iter().map(|(n, d)| (n, &d.kind)).collect();
    assert_eq!(
        exported, documented,
        "README's metrics table and /metrics differ"
    );

    // Every sample carries exactly its family's documented label names, and every enumerated
    // label takes only documented values.
    let issuers = set([&w.a.issuer, &w.b.issuer]);
    for sample in &scrape.samples {
        let family = scrape.family(&sample.name);
        let doc = &readme[&family];
        let mut names: BTreeSet<String> = sample.labels.keys().cloned().collect();
        if sample.name.ends_with("_bucket") {
            assert!(names.remove("le"), "{sample:?}");
        }
        assert_eq!(names, set(doc.labels.keys()), "{sample:?}");
        for (label, value) in &sample.labels {
            let allowed = match (label.as_str(), doc.labels.get(label)) {
                ("le", _) => continue,
                ("issuer", _) => issuers.clone(),
                ("version", _) => set([env!("CARGO_PKG_VERSION")]),
                (_, Some(Some(values))) => values.clone(),
                _ => doc.meaning_codes.clone(),
            };
            assert!(
                allowed.contains(value),
                "{family}{{{label}=\"{value}\"}} is not documented in README (documented: {allowed:?})"
            );
        }
    }

    // The README lists every value the code can produce.
    let checks = &readme["jwt_authz_checks_total"];
    let reasons: BTreeSet<String> = Deny::LABELS
        .iter()
        .chain(&["ok", "resource_metadata"])
        .map(|s| s.to_string())
        .collect();
    assert_eq!(checks.meaning_codes, reasons);
    assert_eq!(scrape.values("jwt_authz_checks_total", "reason"), reasons);
    let outcomes: BTreeSet<String> = FetchError::LABELS
        .iter()
        .chain(&["ok"])
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        readme["jwt_authz_jwks_refreshes_total"].meaning_codes,
        outcomes
    );
    for (family, label) in [
        ("jwt_authz_checks_total", "frontend"),
        ("jwt_authz_checks_total", "decision"),
        ("jwt_authz_check_duration_seconds", "frontend"),
        ("jwt_authz_key_lookups_total", "result"),
        ("jwt_authz_token_cache_lookups_total", "result"),
        ("jwt_authz_jwks_unknown_kid_refetches_total", "result"),
    ] {
        // Pre-resolved handles: every documented value is exported from the start.
        let documented = readme[family].labels[label]
            .clone()
            .expect("values in parentheses");
        assert_eq!(
            scrape.values(family, label),
            documented,
            "{family}{{{label}}}"
        );
    }

    // And the script shows up where an operator would look for it.
    let check = |decision: &str, reason: &str| {
        let labels = [
            ("frontend", "grpc"),
            ("decision", decision),
            ("reason", reason),
        ];
        scrape.value("jwt_authz_checks_total", &labels)
    };
    assert_eq!(check("allow", "ok"), 2.0);
    assert_eq!(check("deny", "missing_token"), 1.0);
    assert_eq!(check("deny", "invalid_request"), 1.0);
    assert_eq!(check("deny", "malformed"), 1.0);
    assert_eq!(check("deny", "expired"), 1.0);
    assert_eq!(check("deny", "bad_audience"), 1.0);
    assert_eq!(check("deny", "bad_signature"), 1.0);
    assert_eq!(check("deny", "unknown_kid"), 3.0);
    let grpc = [("frontend", "grpc")];
    assert_eq!(
        scrape.value("jwt_authz_check_duration_seconds_count", &grpc),
        11.0
    );
    let hit = [("result", "hit")];
    assert_eq!(
        scrape.value("jwt_authz_token_cache_lookups_total", &hit),
        1.0
    );
    let refetch = |issuer: &str, result: &str| {
        let labels = [("issuer", issuer), ("result", result)];
        scrape.value("jwt_authz_jwks_unknown_kid_refetches_total", &labels)
    };
    assert_eq!(refetch(&w.a.issuer, "performed"), 1.0);
    assert_eq!(refetch(&w.a.issuer, "rate_limited"), 1.0);
    assert_eq!(refetch(&w.b.issuer, "performed"), 1.0);
    let refresh = |issuer: &str, outcome: &str| {
        let labels = [("issuer", issuer), ("outcome", outcome)];
        scrape.value("jwt_authz_jwks_refreshes_total", &labels)
    };
    assert_eq!(refresh(&w.b.issuer, "http_status"), 1.0);
    assert_eq!(refresh(&w.b.issuer, "ok"), 1.0);
    assert_eq!(refresh(&w.a.issuer, "ok"), 2.0);
    let skipped = |reason: &str| {
        let labels = [("issuer", w.a.issuer.as_str()), ("reason", reason)];
        scrape.value("jwt_authz_jwks_skipped_keys_total", &labels)
    };
    assert_eq!(skipped("symmetric"), 2.0, "once per fetch");
    assert_eq!(skipped("not_for_signatures"), 2.0);
    let a = [("issuer", w.a.issuer.as_str())];
    assert_eq!(scrape.value("jwt_authz_jwks_keys", &a), 1.0);
    assert_eq!(scrape.value("jwt_authz_jwks_waiting_requests", &a), 0.0);
    assert!(scrape.value("jwt_authz_jwks_last_success_timestamp_seconds", &a) > 1.7e9);
    let ok = [("outcome", "ok")];
    assert_eq!(scrape.value("jwt_authz_config_reloads_total", &ok), 1.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(scrape.value("jwt_authz_build_info", &version), 1.0);
}

/// A string no code path could produce by accident.
fn marker(what: &str) -> String {
    format!("zq{what}{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn no_label_value_in_metrics_comes_from_the_request() {
    let w = World::start(vec![TokenSource::Authorization]).await;
    let m = |what| marker(what);
    let (sub, kid, path, query, host, header, header_value, request_id, method) = (
        m("sub"),
        m("kid"),
        m("path"),
        m("query"),
        m("host"),
        m("header"),
        m("value"),
        m("rid"),
        m("method"),
    );
    let (iss, aud, scope, typ, alg, jti) =
        (m("iss"), m("aud"), m("scope"), m("typ"), m("alg"), m("jti"));
    let (cookie_name, cookie_value) = (m("cookiename"), m("cookievalue"));
    let cookie = format!("{cookie_name}={cookie_value}");
    let mut claims = w.a.claims(AUD, &sub);
    claims["scope"] = json!(scope);
    claims["jti"] = json!(jti);
    let allowed = w.key_a.mint(&claims);
    let unknown_kid = SigningKey::generate(Alg::ES256, Some(&kid)).mint(&claims);
    let mut foreign = claims.clone();
    foreign["iss"] = json!(format!("https://{iss}.example"));
    let unknown_issuer = w.key_a.mint(&foreign);
    let wrong_audience = w.key_a.mint(&w.a.claims(&aud, &sub));
    let header_json = json!({"alg": "ES256", "kid": "k1", "typ": typ}).to_string();
    let odd_typ = w.key_a.sign_parts(&header_json, &claims.to_string());
    let odd_alg = w.key_a.sign_parts(
        &json!({"alg": alg, "kid": "k1"}).to_string(),
        &claims.to_string(),
    );
    let tokens = [
        &allowed,
        &unknown_kid,
        &unknown_issuer,
        &wrong_audience,
        &odd_typ,
        &odd_alg,
    ];
    let full_path = format!("/{path}?{query}={query}");
    let host = format!("{host}.example");
    for token in tokens {
        let auth = format!("Bearer {token}");
        for method in ["GET", method.as_str()] {
            let headers = [
                ("authorization", auth.as_str()),
                (header.as_str(), header_value.as_str()),
                ("x-request-id", request_id.as_str()),
                ("cookie", cookie.as_str()),
            ];
            let req = check_request(method, &host, &full_path, &headers);
            w.client.raw(req).await.expect("Check answers");
        }
    }

    let body = w.app.metrics().await;
    for (what, value) in [
        ("sub", &sub),
        ("kid", &kid),
        ("path", &path),
        ("query", &query),
        ("host", &host),
        ("header name", &header),
        ("header value", &header_value),
        ("x-request-id", &request_id),
        ("cookie name", &cookie_name),
        ("cookie value", &cookie_value),
        ("method", &method),
        ("iss", &iss),
        ("aud", &aud),
        ("scope", &scope),
        ("typ", &typ),
        ("alg", &alg),
        ("jti", &jti),
    ] {
        assert!(
            !body.contains(value.as_str()),
            "the request's {what} is in /metrics:\n{body}"
        );
    }
    for token in tokens {
        assert!(!body.contains(token.as_str()), "a token is in /metrics");
    }
    // Positively: every label value is a documented enum, an issuer from the config, or the version.
    let scrape = Scrape::parse(&body);
    let readme = readme_metrics();
    let configured = set([&w.a.issuer, &w.b.issuer]);
    for sample in &scrape.samples {
        let doc = &readme[&scrape.family(&sample.name)];
        for (label, value) in &sample.labels {
            let known = match (label.as_str(), doc.labels.get(label)) {
                ("le", _) => value.parse::<f64>().is_ok() || value == "+Inf",
                ("issuer", _) => configured.contains(value),
                ("version", _) => value == env!("CARGO_PKG_VERSION"),
                (_, Some(Some(values))) => values.contains(value),
                _ => doc.meaning_codes.contains(value),
            };
            assert!(
                known,
                "{sample:?}: {label}={value:?} is not a bounded label value"
            );
        }
    }
}

// === logs ===

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    /// Where this thread's events go: (text, JSON), while a test captures.
    static SINKS: RefCell<Option<(Captured, Captured)>> = const { RefCell::new(None) };
}

/// Writes each event into the emitting thread's sink (text or JSON), or nowhere.
#[derive(Clone, Copy)]
struct ThreadSink {
    json: bool,
}

impl io::Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SINKS.with(|s| {
            if let Some((text, json)) = &*s.borrow() {
                let sink = if self.json { json } else { text };
                sink.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadSink {
    type Writer = ThreadSink;
    fn make_writer(&'a self) -> ThreadSink {
        *self
    }
}

/// Captures, in text and in JSON, everything logged on this thread until the guard drops, at
/// trace level for every crate — stricter than any filter an operator could configure. `#[tokio::test]` runs every task — jwt-authz, the issuers, the client — on the
/// test's thread, so all of their events are this thread's.
///
/// The subscriber is the process-wide default, installed once, with every callsite enabled:
/// `tracing` caches a callsite's interest for the whole process, so a thread-scoped subscriber
/// (`set_default`) would miss the events of any callsite another test thread, with no
/// subscriber, reached first — and a leak there would pass unseen. `log` records (reqwest,
/// rustls) are bridged in as well.
fn capture_logs() -> (Captured, Captured, impl Drop) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::{fmt, layer::SubscriberExt as _};
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("trace"))
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(ThreadSink { json: false }),
            )
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(ThreadSink { json: true }),
            )
            .try_init()
            .expect("no other global subscriber in this test binary");
    });
    let (text, json) = (Captured::default(), Captured::default());
    SINKS.with(|s| *s.borrow_mut() = Some((text.clone(), json.clone())));
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            SINKS.with(|s| *s.borrow_mut() = None);
        }
    }
    (text, json, Stop)
}

/// The parts of a token worth redacting: the whole, its claims and its signature.
fn secret_parts(token: &str) -> Vec<String> {
    let mut parts = vec![token.to_owned()];
    parts.extend(
        token
            .split('.')
            .skip(1)
            .filter(|p| p.len() >= 16)
            .map(str::to_owned),
    );
    parts
}

#[tokio::test]
async fn trace_logs_hold_no_token_cookie_or_query_token() {
    let (text_logs, json_logs, _capturing) = capture_logs();
    let w = World::start(vec![
        TokenSource::Authorization,
        TokenSource::Cookie {
            name: "access_token".into(),
        },
        TokenSource::Query {
            name: "access_token".into(),
        },
    ])
    .await;
    let c = &w.client;
    let mut secrets: Vec<(&str, String)> = Vec::new();

    // allow (Authorization header)
    let allowed = w.token_a("alice");
    assert!(c.bearer(&allowed).await.allowed());
    secrets.push(("allowed token", allowed));
    // deny: expired
    let mut claims = w.a.claims(AUD, "alice");
    claims["exp"] = json!(now() - 600);
    let expired = w.key_a.mint(&claims);
    assert_eq!(c.bearer(&expired).await.http_status, 401);
    secrets.push(("expired token", expired));
    // a malformed token
    let malformed = format!("{}.{}.{}", marker("hdr"), marker("payload"), marker("sig"));
    assert_eq!(c.bearer(&malformed).await.http_status, 401);
    secrets.push(("malformed token", malformed));
    // a cookie token, next to another cookie whose value is just as private
    let cookie_token = w.token_a("carol");
    let session = marker("session");
    let cookie = format!("session={session}; access_token={cookie_token}");
    assert!(c.headers(&[("cookie", &cookie)]).await.allowed());
    secrets.push(("cookie token", cookie_token));
    secrets.push(("session cookie", session));
    // a query token
    let query_token = w.token_a("dave");
    let path = format!("/orders?page=2&access_token={query_token}");
    let o = c.request("GET", &path, &[]).await;
    assert!(o.allowed(), "{o:?}");
    assert_eq!(o.remove_query, ["access_token"]);
    secrets.push(("query token", query_token));
    // a refresh failure, triggered by a token whose key the issuer does not publish
    let refetching = w.fail_a_refresh_of_b().await;
    secrets.push(("token that triggered a failing refresh", refetching));
    w.app.stop().await;

    for (format, logs) in [("text", &text_logs), ("JSON", &json_logs)] {
        let text = logs.text();
        // The capture saw the paths it must: the refresh failure, the decisions, and the
        // transport crates' trace output.
        for expected in ["key set fetch failed", "expired", "h2::", "hyper"] {
            assert!(text.contains(expected), "{format} logs lack {expected:?}");
        }
        for (what, secret) in &secrets {
            for part in secret_parts(secret) {
                if let Some(at) = text.find(&part) {
                    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                    panic!(
                        "the {what} is in the {format} logs:\n{}",
                        &text[line_start..line_end]
                    );
                }
            }
        }
    }
}
