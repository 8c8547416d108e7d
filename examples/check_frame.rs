//! Writes Envoy `CheckRequest`s as length-prefixed gRPC frames (the `-d FILE` body of `h2load`),
//! holding bearer tokens minted by an in-process development issuer, and optionally keeps that
//! issuer serving discovery + JWKS so that `jwt-authz serve --issuer URL` can verify the tokens.
//!
//! ```text
//! cargo run --release --example check_frame -- --out target/bench --distinct 10000 --serve
//! ```
//!
//! Files written to `--out`:
//! - `cached.frame`    one frame, one token (h2load sends the same body on every request);
//! - `distinct.frames` `--distinct` frames back to back, each with its own token (different
//!   `sub` and `jti`), for `examples/check_load.rs` — h2load cannot vary the body;
//! - `missing.frame`   one frame with no `authorization` header (the cheapest denial);
//! - `token`           the token of `cached.frame`, bare (for `authorization: Bearer …` via Envoy);
//! - `issuer`          the issuer URL to pass to `jwt-authz serve --issuer`;
//! - `ready`           written last, once the issuer is listening (only with `--serve`).
//!
//! A gRPC frame is 1 byte "compressed" flag (0), a 4-byte big-endian length, then the protobuf
//! message (gRPC over HTTP/2, "Length-Prefixed-Message").

use std::{
    collections::HashMap,
    fs,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;
use envoy_types::pb::envoy::service::auth::v3::{
    attribute_context::{HttpRequest, Request},
    AttributeContext, CheckRequest,
};
use jwt_authz::dev::{access_token_claims, DevIssuer};
use prost::Message as _;

#[derive(Debug, Parser)]
struct Args {
    /// Directory for the frame files (created if missing).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// How many distinct-token frames to write into `distinct.frames` (0: none).
    #[arg(long, default_value_t = 0)]
    distinct: usize,
    /// Audience the tokens carry (pass the same to `jwt-authz serve --audience`).
    #[arg(long, default_value = "https://api.example.test")]
    audience: String,
    /// Where the development issuer listens (loopback; the port is part of the issuer URL).
    #[arg(long, default_value = "127.0.0.1:18088")]
    issuer_listen: SocketAddr,
    /// Token lifetime.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Keep serving the issuer's discovery and JWKS until SIGTERM / Ctrl-C.
    #[arg(long)]
    serve: bool,
}

/// A CheckRequest shaped like the one Envoy's ext_authz filter sends for `GET /things/42`.
fn check_request(authorization: Option<&str>, n: usize) -> CheckRequest {
    let mut headers: HashMap<String, String> = [
        (":authority", "api.example.test"),
        (":method", "GET"),
        (":path", "/things/42"),
        (":scheme", "http"),
        ("accept", "*/*"),
        ("user-agent", "h2load nghttp2/1.52.0"),
        ("x-forwarded-proto", "http"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    headers.insert(
        "x-request-id".into(),
        format!("00000000-0000-4000-8000-{n:012x}"),
    );
    if let Some(value) = authorization {
        headers.insert("authorization".into(), value.to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    id: n.to_string(),
                    method: "GET".into(),
                    headers,
                    path: "/things/42".into(),
                    host: "api.example.test".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/2".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Appends one gRPC Length-Prefixed-Message holding `msg` to `out`.
fn push_frame(out: &mut Vec<u8>, msg: &CheckRequest) {
    let len = u32::try_from(msg.encoded_len()).expect("a CheckRequest is far below 4 GiB");
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
    msg.encode(out).expect("Vec<u8> grows as needed");
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    eprintln!(
        "check_frame: wrote {} ({} bytes)",
        path.display(),
        bytes.len()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    fs::create_dir_all(&args.out)?;
    let _ = fs::remove_file(args.out.join("ready"));
    let (issuer, task) = DevIssuer::start(args.issuer_listen).await?;
    let mint = |subject: &str| {
        let claims = access_token_claims(&issuer.issuer, &args.audience, subject, args.ttl);
        format!("Bearer {}", issuer.key.mint(&claims))
    };

    let cached = mint("bench-user");
    write(
        &args.out.join("token"),
        cached.trim_start_matches("Bearer ").as_bytes(),
    )?;
    let mut one = Vec::new();
    push_frame(&mut one, &check_request(Some(&cached), 0));
    write(&args.out.join("cached.frame"), &one)?;

    let mut missing = Vec::new();
    push_frame(&mut missing, &check_request(None, 0));
    write(&args.out.join("missing.frame"), &missing)?;

    if args.distinct > 0 {
        // RSA-2048 signing is ~1 ms, so 10k tokens take a few seconds.
        let mut all = Vec::with_capacity(args.distinct * one.len());
        for n in 0..args.distinct {
            push_frame(
                &mut all,
                &check_request(Some(&mint(&format!("user-{n}"))), n),
            );
        }
        write(&args.out.join("distinct.frames"), &all)?;
    }
    write(&args.out.join("issuer"), issuer.issuer.as_bytes())?;

    if args.serve {
        write(&args.out.join("ready"), b"")?;
        eprintln!(
            "check_frame: issuer {} serving discovery and JWKS; stop with SIGTERM",
            issuer.issuer
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    task.abort();
    Ok(())
}
