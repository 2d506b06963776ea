//! The durable job queue: jobs are written in the same transaction as what they process,
//! claimed by workers with a lease (expired leases are claimed again after a crash), retried
//! with exponential backoff and jitter, and dead after their last attempt. The job records
//! (`domain::jobs`) and their storage (`storage`) sit below; this module runs the workers.

pub mod worker;

#[derive(Clone, Debug)]
pub struct JobSettings {
    pub workers: usize,
    pub max_attempts: i32,
    pub lease: std::time::Duration,
    pub retry_base: std::time::Duration,
    pub retry_max: std::time::Duration,
    pub poll_interval: std::time::Duration,
}

/// Exponential backoff with full jitter: a random delay up to `base * 2^(attempt-1)`, capped,
/// and at least a tenth of it so retries never stampede at once.
pub fn retry_delay(
    attempt: i32,
    base: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let random = u64::from_le_bytes(crate::crypto::random_bytes::<8>());
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let fraction = 0.1 + 0.9 * (random as f64 / u64::MAX as f64);
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_delays_grow_stay_capped_and_jitter() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..12 {
            let delay = retry_delay(attempt, base, max);
            let ceiling = (base * 2u32.pow(u32::try_from(attempt - 1).unwrap())).min(max);
            assert!(delay <= ceiling && delay >= ceiling / 10, "attempt {attempt}: {delay:?}");
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| retry_delay(5, base, max)).collect();
        assert!(samples.len() > 1, "delays are jittered");
    }
}
