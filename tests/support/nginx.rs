//! A real nginx (Debian package) on a loopback port, rendered from tests/e2e/nginx.conf.tmpl:
//! `auth_request` to jwt-authz's forward-auth endpoint in front of an app. Killed on drop; on a
//! failing test its error log is printed. A missing nginx is a failure that names the setup
//! command, never a skip.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

const SETUP_HINT: &str =
    "run scripts/setup-nginx (installs the Debian package nginx, whose auth_request module this test uses)";

/// Where nginx is: `NGINX_BIN`, else `nginx` on PATH, else /usr/sbin/nginx.
fn locate() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return PathBuf::from(bin);
    }
    let on_path = Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return PathBuf::from("nginx");
    }
    let sbin = PathBuf::from("/usr/sbin/nginx");
    assert!(
        sbin.is_file(),
        "nginx not found (NGINX_BIN, PATH, /usr/sbin/nginx): {SETUP_HINT}"
    );
    sbin
}

pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Nginx {
    /// Starts nginx listening on loopback, asking `forward_auth_port`, in front of `upstream_port`.
    pub async fn start(name: &str, forward_auth_port: u16, upstream_port: u16) -> Nginx {
        let bin = locate();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("nginx")
            .join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create nginx scratch dir");
        let port = crate::ports::free_port();
        let config = include_str!("../e2e/nginx.conf.tmpl")
            .replace("{{DIR}}", &dir.display().to_string())
            .replace("{{LISTEN_PORT}}", &port.to_string())
            .replace("{{FORWARD_AUTH_PORT}}", &forward_auth_port.to_string())
            .replace("{{UPSTREAM_PORT}}", &upstream_port.to_string());
        assert!(!config.contains("{{"), "unfilled placeholder:\n{config}");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {SETUP_HINT}", bin.display()));
        let mut nginx = Nginx { port, dir, child };
        nginx.wait_listening().await;
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("nginx exited at startup with {status}:\n{}", self.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log", "access.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("----- nginx {f} -----\n{tail}\n")
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            eprintln!("nginx files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
