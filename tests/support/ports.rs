//! Loopback ports for child processes (Envoy, nginx, the provider, `jwt-authz serve`) that must be
//! told their port in a config file before they start.
//!
//! Two races make "bind :0, read the port, close it" unsafe here: the kernel may hand the same
//! ephemeral port to an outgoing connection before the child binds it, and the tests of one binary
//! run concurrently, so another test may pick the same port in that window. So ports are chosen
//! at random *below* the kernel's ephemeral range (never handed out as source ports), and each is
//! handed out at most once per test process.

#![allow(dead_code)] // each test binary uses a different subset

use std::{collections::HashSet, net::TcpListener, sync::Mutex};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `N` distinct loopback ports, free right now and never returned before by this process.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let range = candidate_range();
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    // Hold every chosen port bound until all N are found, so none is picked twice.
    let mut held: Vec<TcpListener> = Vec::with_capacity(N);
    for _ in 0..10_000 {
        if held.len() == N {
            break;
        }
        let port = rand::random_range(range.clone());
        if handed.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            handed.insert(port);
            held.push(listener);
        }
    }
    assert_eq!(
        held.len(),
        N,
        "could not find {N} free loopback ports in {range:?}"
    );
    std::array::from_fn(|i| held[i].local_addr().expect("bound address").port())
}

/// One port, as [`free_ports`].
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// The gap below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), or above it
/// when that gap is too small.
fn candidate_range() -> std::ops::Range<u16> {
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    if low > 12_000 {
        10_000..low
    } else {
        assert!(
            high < u16::MAX - 2_000,
            "the ephemeral port range {low}-{high} leaves no room for fixed test ports"
        );
        high + 1..u16::MAX
    }
}
