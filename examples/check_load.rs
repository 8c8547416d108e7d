//! A small gRPC load generator for `Check` that, unlike `h2load -d`, can send a different body on
//! every request: it replays the pre-encoded frames of a file written by `examples/check_frame.rs`
//! (`distinct.frames`: one token per frame) round-robin, over `--connections` HTTP/2 connections
//! with `--streams` requests in flight on each, and reads every response to count allows, denials
//! and errors — so a fast denial can never pass for throughput.
//!
//! ```text
//! cargo run --release --example check_load -- --addr http://127.0.0.1:9191 \
//!     --frames target/bench/distinct.frames --connections 2 --streams 64 --requests 200000
//! ```
//!
//! The last line of output is machine-readable (`key=value` pairs), for `scripts/bench-grpc`. It
//! runs on a current-thread runtime so that it uses exactly one core (pin it with `taskset`).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::{BufMut as _, Bytes};
use clap::Parser;
use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use prost::Message as _;
use tonic::{
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
    Request, Status,
};

#[derive(Debug, Parser)]
struct Args {
    /// The Check server.
    #[arg(long, default_value = "http://127.0.0.1:9191")]
    addr: String,
    /// File of gRPC frames (5-byte prefix + CheckRequest), sent round-robin.
    #[arg(long)]
    frames: PathBuf,
    /// HTTP/2 connections.
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, short = 'm', default_value_t = 64)]
    streams: usize,
    /// Requests to time (after the warm-up).
    #[arg(long, short = 'n', default_value_t = 100_000)]
    requests: usize,
    /// Requests sent first and not timed (connections warm, keys loaded).
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
}

/// Sends pre-encoded message bytes as they are and decodes the `CheckResponse`.
#[derive(Clone, Copy)]
struct RawCodec;

struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = CheckResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = CheckResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<CheckResponse>, Status> {
        CheckResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// Splits a file of Length-Prefixed-Messages into the messages.
fn split_frames(mut data: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 5 || data[0] != 0 {
            return Err(format!("bad frame header after {} frames", out.len()));
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let body = data
            .get(5..5 + len)
            .ok_or_else(|| format!("frame {} is truncated", out.len()))?;
        out.push(Bytes::copy_from_slice(body));
        data = &data[5 + len..];
    }
    Ok(out)
}

#[derive(Default)]
struct Tally {
    allowed: u64,
    denied: u64,
    errors: u64,
    /// Microseconds per timed request.
    latencies: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
    }
}

/// One in-flight slot: takes the next request number until `end`, sends, records.
async fn worker(
    mut grpc: Grpc<Channel>,
    frames: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
    end: usize,
) -> Tally {
    let path = http::uri::PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Check");
    let mut tally = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= end {
            return tally;
        }
        let body = frames[i % frames.len()].clone();
        let started = Instant::now();
        let outcome = match grpc.ready().await {
            Ok(()) => grpc
                .unary(Request::new(body), path.clone(), RawCodec)
                .await
                .map(|r| r.into_inner()),
            Err(e) => Err(Status::unavailable(e.to_string())),
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        tally.latencies.push(micros);
        match outcome {
            Ok(CheckResponse {
                status: Some(s),
                http_response: Some(HttpResponse::OkResponse(_)),
                ..
            }) if s.code == 0 => tally.allowed += 1,
            Ok(_) => tally.denied += 1,
            Err(_) => tally.errors += 1,
        }
    }
}

async fn phase(
    channels: &[Channel],
    streams: usize,
    frames: &Arc<Vec<Bytes>>,
    start: usize,
    count: usize,
) -> (Tally, Duration) {
    let next = Arc::new(AtomicUsize::new(start));
    let began = Instant::now();
    let tasks: Vec<_> = channels
        .iter()
        .flat_map(|ch| std::iter::repeat_n(ch, streams))
        .map(|ch| {
            tokio::spawn(worker(
                Grpc::new(ch.clone()),
                frames.clone(),
                next.clone(),
                start + count,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap_or_default());
    }
    (tally, began.elapsed())
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let frames = Arc::new(split_frames(&std::fs::read(&args.frames)?)?);
    if frames.is_empty() {
        return Err(format!("{} holds no frames", args.frames.display()).into());
    }
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections.max(1) {
        // One `connect` per channel: each is its own HTTP/2 connection.
        let ch = Endpoint::from_shared(args.addr.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(ch);
    }
    let streams = args.streams.max(1);
    let (warm, _) = phase(&channels, streams, &frames, 0, args.warmup).await;
    if warm.errors > 0 {
        eprintln!("check_load: {} errors during warm-up", warm.errors);
    }
    let (mut tally, elapsed) = phase(&channels, streams, &frames, args.warmup, args.requests).await;
    tally.latencies.sort_unstable();
    let done = tally.allowed + tally.denied + tally.errors;
    let rps = done as f64 / elapsed.as_secs_f64();
    let l = &tally.latencies;
    println!(
        "check_load: {done} requests in {:.2}s over {} connections x {streams} streams, {} distinct bodies",
        elapsed.as_secs_f64(),
        channels.len(),
        frames.len()
    );
    println!(
        "rps={rps:.0} requests={done} allowed={} denied={} errors={} p50_us={} p90_us={} p99_us={} max_us={}",
        tally.allowed,
        tally.denied,
        tally.errors,
        percentile(l, 50.0),
        percentile(l, 90.0),
        percentile(l, 99.0),
        l.last().copied().unwrap_or(0),
    );
    Ok(())
}
