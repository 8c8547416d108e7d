//! The background loop that keeps one issuer's keys current: refresh when the server's cache
//! lifetime (bounded by the configured interval) runs out, and back off with jitter on failure.
//! It never exits because the provider is unreachable; it stops only at shutdown.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::store::{Cause, IssuerKeys};

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Runs until `shutdown` fires.
pub async fn run(keys: Arc<IssuerKeys>, shutdown: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let report = keys.fetch(Cause::Scheduled).await;
        let delay = match report {
            Some(r) if r.ok && keys.is_static() => return,
            Some(r) if r.ok => {
                failures = 0;
                let i = &keys.issuer;
                jitter(next_refresh(
                    i.min_refresh_interval,
                    i.refresh_interval,
                    r.max_age,
                ))
            }
            _ => {
                failures = failures.saturating_add(1);
                backoff(failures)
            }
        };
        keys.set_next_refresh(std::time::SystemTime::now() + delay);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The server's cache lifetime (RFC 9111 §4.2), bounded by the configured [min, max].
pub fn next_refresh(min: Duration, max: Duration, max_age: Option<Duration>) -> Duration {
    max_age.unwrap_or(max).clamp(min, max.max(min))
}

/// Up to 10% earlier, so a fleet of sidecars does not refresh in lockstep (and before expiry).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(1.0 - 0.1 * rand::random::<f64>())
}

/// Exponential backoff with full jitter: uniformly in [base/2, base], base doubling to a cap.
pub fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_bounded_by_configured_interval() {
        let (min, max) = (Duration::from_secs(30), Duration::from_secs(300));
        assert_eq!(next_refresh(min, max, None), max);
        let minute = Duration::from_secs(60);
        assert_eq!(next_refresh(min, max, Some(minute)), minute);
        assert_eq!(
            next_refresh(min, max, Some(Duration::from_secs(86400))),
            max
        );
        assert_eq!(next_refresh(min, max, Some(Duration::ZERO)), min);
    }

    #[test]
    fn jitter_only_shortens_by_at_most_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100));
            assert!(
                d <= Duration::from_secs(100) && d >= Duration::from_secs(90),
                "{d:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 1..40 {
            let d = backoff(n);
            assert!(d <= BACKOFF_MAX, "{n}: {d:?}");
        }
        assert!(backoff(1) <= BACKOFF_START);
        assert!(backoff(30) >= BACKOFF_MAX / 2);
    }
}
