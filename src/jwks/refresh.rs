//! The background loop that keeps one issuer's keys current: refresh when the server's cache
//! lifetime (bounded by the configured interval) runs out, and back off with jitter on failure.
//! It never exits because the provider is unreachable; it stops only at shutdown.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::store::{Cause, IssuerKeys};

/// Shortest time between two scheduled fetches, whatever `Cache-Control` says.
const MIN_INTERVAL: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Runs until `shutdown` fires.
pub async fn run(keys: Arc<IssuerKeys>, shutdown: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let report = keys.fetch(Cause::Scheduled).await;
        let delay = match report {
            Some(r) if r.ok => {
                failures = 0;
                next_refresh(keys.issuer.refresh_interval, r.max_age)
            }
            _ => {
                failures = failures.saturating_add(1);
                backoff(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The server's cache lifetime, bounded by [MIN_INTERVAL, configured interval].
pub fn next_refresh(interval: Duration, max_age: Option<Duration>) -> Duration {
    let upper = interval.max(MIN_INTERVAL);
    max_age.unwrap_or(upper).clamp(MIN_INTERVAL, upper)
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
        let i = Duration::from_secs(300);
        assert_eq!(next_refresh(i, None), i);
        assert_eq!(
            next_refresh(i, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(next_refresh(i, Some(Duration::from_secs(86400))), i);
        assert_eq!(next_refresh(i, Some(Duration::ZERO)), MIN_INTERVAL);
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
