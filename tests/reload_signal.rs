//! Hot reload by SIGHUP (issue #4 item 6), on a real `jwt-authz serve` process: a change the file
//! watcher cannot see (same length, mtime restored) applies only when SIGHUP arrives; a valid
//! reload under steady traffic drops or half-evaluates no request; an invalid one is refused, says
//! why in the log, and is counted. A child process, because a signal to the test process would
//! reach every in-process server of the other suites.

#[path = "support/ports.rs"]
mod ports;
mod support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use jwt_authz::dev::SigningKey;
use support::*;

const AUD: &str = "https://api.test";

/// Two rule sets of the same length: `/admin` needing `read`, or needing `admn`.
const OPEN: &str =
    "rules:\n- name: admin\n  match: {path: {prefix: /admin}}\n  scopes: {any_of: [read]}\n";
const SCOPED: &str =
    "rules:\n- name: admin\n  match: {path: {prefix: /admin}}\n  scopes: {all_of: [admn]}\n";

struct Serve {
    child: tokio::process::Child,
    grpc: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    config: PathBuf,
    stderr: PathBuf,
    base: String,
}

impl Serve {
    async fn start(issuer: &TestIssuer, rules: &str) -> Serve {
        let [g, a] = ports::free_ports();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("reload-signal-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let base = format!(
            "listen: {{grpc: 127.0.0.1:{g}, admin: 127.0.0.1:{a}}}\nissuers:\n- issuer: {}\n  audiences: [{AUD}]\n",
            issuer.issuer
        );
        let config = dir.join("config.yaml");
        std::fs::write(&config, format!("{base}{rules}")).expect("write config");
        let stderr = dir.join("stderr.log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jwt-authz"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .env("JWT_AUTHZ_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("jwt-authz starts");
        let s = Serve {
            child,
            grpc: format!("127.0.0.1:{g}").parse().expect("addr"),
            admin: format!("127.0.0.1:{a}").parse().expect("addr"),
            config,
            stderr,
            base,
        };
        let url = format!("http://{}/readyz", s.admin);
        for _ in 0..400 {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("jwt-authz did not become ready; stderr: {}", s.log());
    }

    /// Rewrites the config so the file watcher cannot tell: same length, old mtime restored.
    fn rewrite_unseen(&self, rules: &str) {
        let old = std::fs::metadata(&self.config).expect("config metadata");
        let text = format!("{}{rules}", self.base);
        assert_eq!(
            text.len() as u64,
            old.len(),
            "the rewrite must keep the length"
        );
        std::fs::write(&self.config, text).expect("rewrite config");
        let f = std::fs::File::options()
            .write(true)
            .open(&self.config)
            .expect("open config");
        f.set_modified(old.modified().expect("mtime"))
            .expect("restore mtime");
    }

    fn hup(&self) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill -HUP")
            .success();
        assert!(ok, "kill -HUP {pid}");
    }

    async fn reloads(&self, outcome: &str) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let series = format!("jwt_authz_config_reloads_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Polls the reload counter until it reaches `want` (the rules are swapped in just before the
    /// counter moves), for at most ten seconds; returns the last value seen.
    async fn reloads_reaching(&self, outcome: &str, want: u64) -> u64 {
        let mut seen = 0;
        for _ in 0..100 {
            seen = self.reloads(outcome).await;
            if seen >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

async fn admin_status(client: &Checker, bearer: &str) -> u16 {
    client
        .request("GET", "/admin", &[("authorization", bearer)])
        .await
        .http_status
}

/// Polls until `/admin` answers `want`, for at most `limit`.
async fn until_status(client: &Checker, bearer: &str, want: u16, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if admin_status(client, bearer).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn sighup_applies_a_change_the_file_watcher_cannot_see() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let s = Serve::start(&issuer, OPEN).await;
    let client = Checker::connect(s.grpc).await;
    let mut claims = issuer.claims(AUD, "alice");
    claims["scope"] = "read".into();
    let bearer = format!("Bearer {}", key.mint(&claims));
    assert_eq!(admin_status(&client, &bearer).await, 200);
    // The configuration loaded at start counts as the first successful load.
    let loads = s.reloads("ok").await;

    s.rewrite_unseen(SCOPED);
    // The watcher polls every second: give it three chances to (wrongly) notice.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        admin_status(&client, &bearer).await,
        200,
        "nothing reloads without a visible change or SIGHUP"
    );
    assert_eq!(s.reloads("ok").await, loads);

    s.hup();
    assert!(
        until_status(&client, &bearer, 403, Duration::from_secs(10)).await,
        "SIGHUP applies the new rule; log: {}",
        s.log()
    );
    assert_eq!(s.reloads_reaching("ok", loads + 1).await, loads + 1);
    assert!(
        s.log().contains("configuration reloaded reason=\"SIGHUP\""),
        "the log says what triggered the reload: {}",
        s.log()
    );
}

/// An edit followed by SIGHUP is one reload: the file watcher must not apply the same edit again
/// after the signal did. (If the watcher's one-second poll happens to see the edit before the
/// signal arrives, both reloads are legitimate and come in that order; a watcher reload *after*
/// the SIGHUP one is the bug.)
#[tokio::test]
async fn an_edit_followed_by_sighup_is_reloaded_once() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let s = Serve::start(&issuer, OPEN).await;
    let loads = s.reloads("ok").await;

    std::fs::write(&s.config, format!("{}{SCOPED}\n", s.base)).expect("edit config");
    s.hup();
    assert!(
        s.reloads_reaching("ok", loads + 1).await > loads,
        "no reload after the edit and SIGHUP; log: {}",
        s.log()
    );
    // Three more watcher polls.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let log = s.log();
    let after_hup = log
        .split_once("configuration reloaded reason=\"SIGHUP\"")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no SIGHUP reload logged: {log}"));
    assert!(
        !after_hup.contains("reason=\"file changed\""),
        "the watcher reloaded the edit SIGHUP had already applied: {log}"
    );
    let seen_by_watcher_first = log.contains("reason=\"file changed\"");
    assert_eq!(
        s.reloads("ok").await,
        loads + 1 + u64::from(seen_by_watcher_first),
        "{log}"
    );
}

#[tokio::test]
async fn valid_reload_under_traffic_drops_nothing_and_invalid_reload_logs_why() {
    let key = SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let s = Serve::start(&issuer, OPEN).await;
    let client = Checker::connect(s.grpc).await;
    let mut claims = issuer.claims(AUD, "alice");
    claims["scope"] = "read".into();
    let bearer = format!("Bearer {}", key.mint(&claims));
    let loads = s.reloads("ok").await;

    // Four clients hammer /admin while the rule flips from OPEN to SCOPED.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, bearer, stop) = (client.clone(), bearer.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(admin_status(&client, &bearer).await);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.rewrite_unseen(SCOPED);
    s.hup();
    assert!(
        until_status(&client, &bearer, 403, Duration::from_secs(10)).await,
        "the reload applied"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let seen = w.await.expect("worker");
        assert!(seen.len() > 10, "the worker sent traffic: {seen:?}");
        // Every check is answered by the old rule set or the new one, never anything else, and
        // once a worker sees the new one it never sees the old again (an atomic swap).
        assert!(
            seen.iter().all(|s| *s == 200 || *s == 403),
            "only 200 (old rules) or 403 (new rules): {seen:?}"
        );
        let first_new = seen
            .iter()
            .position(|s| *s == 403)
            .expect("saw the new rules");
        assert!(
            seen[first_new..].iter().all(|s| *s == 403),
            "no request evaluated by the old rules after the new ones: {seen:?}"
        );
    }
    assert_eq!(s.reloads_reaching("ok", loads + 1).await, loads + 1);

    // An invalid config: refused, the running one kept, the reason logged and counted.
    std::fs::write(
        &s.config,
        format!("{}rules:\n- match: {{path: {{regex: '('}}}}\n", s.base),
    )
    .expect("write invalid config");
    s.hup();
    // The file watcher may see this change too: one or two rejections.
    let rejected = s.reloads_reaching("rejected", 1).await;
    assert!(rejected >= 1, "the invalid reload is counted");
    assert_eq!(admin_status(&client, &bearer).await, 403, "old rules kept");
    let log = s.log();
    assert!(
        log.contains("configuration reload rejected") && log.contains("rules[0].match.path.regex"),
        "the log names the field that is wrong: {log}"
    );
}
