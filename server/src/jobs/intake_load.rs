//! Whether the intake is saturated, shared by the ingest writer, which measures it, and by
//! what gives way to it: requests go into the intake log instead of being stored as their rows
//! in the commit that acknowledges them (`storage::IngestWriter`), and the workers and the
//! log's expansion wait before taking the writer's turn.
//!
//! On SQLite one writer serves acks and workers in turns. Storing a call's rows in the turn
//! that acknowledges it holds every request waiting behind it; a log row per group costs the
//! turn a small part of that (docs/BENCHMARKS.md, run 18). Below saturation nothing changes:
//! each call is searchable when its sender gets the 2xx.
//!
//! Saturation is measured by demand, not by how the writer copes with it: the rate at which
//! requests arrive. The number waiting, group sizes or turn lengths would not do: logging makes
//! waits and turns short and groups small, which would read as an eased intake; and at a
//! moderate rate a slow disk makes many wait although one writer keeps up. But senders that
//! keep a fixed number of requests open (a provider's delivery workers, the load bench's
//! connections) send only as fast as they are answered: storing rows in the acks' commits, the
//! writer answered 3,500-4,800 a second in some runs, under the threshold, and the intake
//! stayed unlogged at a third of what logging takes (docs/BENCHMARKS.md, run 28). So an intake
//! whose arrivals reach the rate at which a saturated one eases, with a group's worth of
//! requests waiting (`WAITING_SATURATES`), is saturated too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Arrivals a second from which the intake counts as saturated, unless configured
/// (`ingest.intake_log_above_per_second`): on two cores one writer stores ~5,000 calls a second
/// as rows (docs/BENCHMARKS.md, run 18), and 2,000 a second leave it room.
pub const SATURATED_PER_SECOND: f64 = 4_000.0;

/// A saturated intake eases once arrivals fall under this share of `saturated_per_second`, so
/// that a rate near the threshold does not switch logging on and off.
const EASED_SHARE: f64 = 0.6;

/// Requests waiting for their acks that saturate an intake whose arrivals are past the
/// `EASED_SHARE` of the threshold though under it: answered as fast as they come, they would
/// be more.
const WAITING_SATURATES: usize = 32;

/// Arrivals are counted over windows this long; each window's rate moves the running rate
/// halfway towards it.
const WINDOW: Duration = Duration::from_millis(50);

/// A saturated intake that took no request for this long, and has few waiting, has eased: the
/// burst is over. (While a slow fsync holds every request, none arrives, but many wait.)
pub const QUIET_AFTER: Duration = Duration::from_millis(100);

/// Requests waiting for their acks that keep a saturated intake saturated through a quiet
/// spell.
const STALLED_IN_FLIGHT: usize = 8;

/// The longest a worker waits for a saturated intake before claiming anyway, so that a burst
/// that does not end still leaves the workers a turn every so often.
pub const MOST_A_WORKER_WAITS: Duration = Duration::from_secs(1);

/// When the intake logs writes instead of storing their rows in the commit that acknowledges
/// them (`ingest.intake_log`; the log exists on SQLite only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeLogging {
    /// Never: every write is stored as its rows in the commit that acknowledges it.
    Never,
    /// While the intake is saturated.
    #[default]
    WhenSaturated,
    /// Every write: each call is stored moments after its ack.
    Always,
}

/// Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug)]
pub struct IntakeLoad(Arc<State>);

#[derive(Debug)]
struct State {
    in_flight: AtomicUsize,
    arrivals: Mutex<Arrivals>,
    /// Notified when an arriving request finds the intake eased.
    eased: Notify,
    saturated_per_second: f64,
    quiet_after: Duration,
}

#[derive(Debug, Default)]
struct Arrivals {
    /// Running rate, a second.
    rate: f64,
    window_start: Option<Instant>,
    in_window: u32,
    last: Option<Instant>,
    /// Past `saturated_per_second`, and not back under its `EASED_SHARE` since.
    saturated: bool,
}

/// A request waiting for its ack (`IntakeLoad::arrived`); it counts until this drops.
#[derive(Debug)]
pub struct InFlight(IntakeLoad);

impl Drop for InFlight {
    fn drop(&mut self) {
        (self.0).0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for IntakeLoad {
    fn default() -> Self {
        Self::new(SATURATED_PER_SECOND)
    }
}

impl IntakeLoad {
    /// An intake saturated from `saturated_per_second` arrivals a second.
    pub fn new(saturated_per_second: f64) -> Self {
        Self::with(saturated_per_second, QUIET_AFTER)
    }

    fn with(saturated_per_second: f64, quiet_after: Duration) -> Self {
        Self(Arc::new(State {
            in_flight: AtomicUsize::new(0),
            arrivals: Mutex::default(),
            eased: Notify::new(),
            saturated_per_second,
            quiet_after,
        }))
    }

    /// Whether requests arrive faster than the intake stores them as rows.
    pub fn is_saturated(&self) -> bool {
        self.saturated_at(Instant::now())
    }

    /// Counts a request that waits for its ack until the returned guard drops.
    pub fn arrived(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.arrived_at(Instant::now());
        InFlight(self.clone())
    }

    fn saturated_at(&self, now: Instant) -> bool {
        let arrivals = self.arrivals();
        let stalled = self.0.in_flight.load(Ordering::Relaxed) >= STALLED_IN_FLIGHT;
        arrivals.saturated && (self.recent(&arrivals, now) || stalled)
    }

    fn recent(&self, arrivals: &Arrivals, now: Instant) -> bool {
        arrivals.last.is_some_and(|last| now.saturating_duration_since(last) < self.0.quiet_after)
    }

    fn arrived_at(&self, now: Instant) {
        let was = self.saturated_at(now);
        {
            let mut arrivals = self.arrivals();
            let stalled = self.0.in_flight.load(Ordering::Relaxed) >= STALLED_IN_FLIGHT;
            if !self.recent(&arrivals, now) && !stalled {
                // After a quiet spell the rate starts over. Not after a stall that held many
                // requests (a slow fsync; their senders' next requests come when they are
                // answered): starting over there took the saturated intake back to storing
                // rows in the acks' commits, at a fifth of its rate, for one to three seconds
                // (docs/BENCHMARKS.md, run 28).
                *arrivals = Arrivals { window_start: Some(now), ..Arrivals::default() };
            }
            arrivals.in_window += 1;
            arrivals.last = Some(now);
            let start = *arrivals.window_start.get_or_insert(now);
            let elapsed = now.saturating_duration_since(start);
            if elapsed >= WINDOW {
                let rate = f64::from(arrivals.in_window) / elapsed.as_secs_f64();
                arrivals.rate = (arrivals.rate + rate) / 2.0;
                arrivals.window_start = Some(now);
                arrivals.in_window = 0;
                let threshold = self.0.saturated_per_second;
                let eased_at = threshold * EASED_SHARE;
                let waiting = self.0.in_flight.load(Ordering::Relaxed) >= WAITING_SATURATES;
                arrivals.saturated = if arrivals.saturated {
                    arrivals.rate >= eased_at
                } else {
                    arrivals.rate >= threshold || (arrivals.rate >= eased_at && waiting)
                };
            }
        }
        if was && !self.saturated_at(now) {
            self.0.eased.notify_waiters();
        }
    }

    /// Returns once the intake is not saturated, or after `at_most`.
    pub async fn eased(&self, at_most: Duration) {
        let started = Instant::now();
        loop {
            let eased = self.0.eased.notified();
            tokio::pin!(eased);
            // Registered before the check, so an easing between the two still wakes this waiter.
            eased.as_mut().enable();
            if !self.is_saturated() {
                return;
            }
            let left = at_most.saturating_sub(started.elapsed());
            if left.is_zero() {
                return;
            }
            // A burst that ends sends no request to say so: look again once it would have.
            let _eased_or_look_again =
                tokio::time::timeout(left.min(self.0.quiet_after), eased).await;
        }
    }

    fn arrivals(&self) -> std::sync::MutexGuard<'_, Arrivals> {
        self.0.arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Arrivals at `per_second` for `millis` from `start`; returns the time after the last.
    fn arrive(load: &IntakeLoad, start: Instant, per_second: u64, millis: u64) -> Instant {
        let gap = Duration::from_nanos(1_000_000_000 / per_second);
        let count = per_second * millis / 1000;
        (0..count).fold(start, |now, _| {
            load.arrived_at(now);
            now + gap
        })
    }

    #[test]
    fn a_moderate_rate_never_saturates() {
        let load = IntakeLoad::new(4_000.0);
        let start = Instant::now();
        assert!(!load.saturated_at(start));
        let gap = Duration::from_micros(500);
        let mut now = start;
        // 2,000 a second for ten seconds, in bursts of 20 at once every 10 ms.
        for burst in 0..1_000 {
            for _ in 0..20 {
                load.arrived_at(now);
                assert!(!load.saturated_at(now), "saturated in burst {burst}");
            }
            now += gap * 20;
        }
    }

    #[test]
    fn a_high_rate_saturates_and_only_a_much_lower_one_eases() {
        let load = IntakeLoad::new(4_000.0);
        let start = Instant::now();
        let now = arrive(&load, start, 10_000, 200);
        assert!(load.saturated_at(now));
        // Just under the threshold: still saturated (logging must not switch off and on).
        let now = arrive(&load, now, 3_000, 2_000);
        assert!(load.saturated_at(now));
        // Demand falls: eased within a few windows.
        let now = arrive(&load, now, 1_000, 300);
        assert!(!load.saturated_at(now));
        // And just under the threshold does not saturate it again.
        let now = arrive(&load, now, 3_000, 2_000);
        assert!(!load.saturated_at(now));
    }

    #[test]
    fn a_rate_under_the_threshold_saturates_with_a_group_waiting() {
        let load = IntakeLoad::new(4_000.0);
        let start = Instant::now();
        // 3,000 a second, answered as they come: not saturated.
        let now = arrive(&load, start, 3_000, 1_000);
        assert!(!load.saturated_at(now));
        // The same rate with a group's worth waiting (senders that keep requests open,
        // answered no faster than this): saturated, and it stays so while the rate holds.
        let held: Vec<InFlight> = (0..WAITING_SATURATES).map(|_| load.arrived()).collect();
        let now = arrive(&load, now, 3_000, 200);
        assert!(load.saturated_at(now));
        drop(held);
        let now = arrive(&load, now, 3_000, 1_000);
        assert!(load.saturated_at(now));
        // Many waiting at a moderate rate (a slow disk) is no saturation.
        let load = IntakeLoad::new(4_000.0);
        let held: Vec<InFlight> = (0..WAITING_SATURATES * 4).map(|_| load.arrived()).collect();
        let now = arrive(&load, now, 2_000, 1_000);
        assert!(!load.saturated_at(now));
        drop(held);
    }

    #[test]
    fn a_saturated_intake_that_takes_no_request_has_eased() {
        let load = IntakeLoad::new(4_000.0);
        let last = arrive(&load, Instant::now(), 10_000, 500);
        assert!(load.saturated_at(last));
        assert!(load.saturated_at(last + QUIET_AFTER - Duration::from_millis(2)));
        assert!(!load.saturated_at(last + QUIET_AFTER));
        // The first request after the quiet spell starts the rate over.
        load.arrived_at(last + Duration::from_secs(1));
        assert!(!load.saturated_at(last + Duration::from_secs(1)));
    }

    #[test]
    fn a_stall_that_holds_many_requests_is_no_quiet_spell() {
        let load = IntakeLoad::new(4_000.0);
        let held: Vec<InFlight> = (0..STALLED_IN_FLIGHT).map(|_| load.arrived()).collect();
        let last = arrive(&load, Instant::now(), 10_000, 500);
        // No request arrives for a second (a slow fsync holds them all): still saturated.
        assert!(load.saturated_at(last + Duration::from_secs(1)));
        drop(held);
        assert!(!load.saturated_at(last + Duration::from_secs(1)));
    }

    #[test]
    fn arrivals_after_a_stall_find_the_intake_still_saturated() {
        let load = IntakeLoad::new(4_000.0);
        let last = arrive(&load, Instant::now(), 10_000, 500);
        assert!(load.saturated_at(last));
        // A slow fsync holds 64 requests for 300 ms; then they are answered and their senders'
        // next requests arrive at the same rate: still saturated, at once and after.
        let held: Vec<InFlight> = (0..64).map(|_| load.arrived()).collect();
        let resumed = last + Duration::from_millis(300);
        load.arrived_at(resumed);
        assert!(load.saturated_at(resumed));
        drop(held);
        let now = arrive(&load, resumed, 10_000, 200);
        assert!(load.saturated_at(now));
        // A quiet spell with nothing waiting still starts the rate over.
        load.arrived_at(now + Duration::from_secs(1));
        assert!(!load.saturated_at(now + Duration::from_secs(1)));
    }

    #[test]
    fn requests_count_while_they_wait() {
        let load = IntakeLoad::default();
        let first = load.arrived();
        let second = load.arrived();
        assert_eq!(load.0.in_flight.load(Ordering::Relaxed), 2);
        drop(first);
        drop(second);
        assert_eq!(load.0.in_flight.load(Ordering::Relaxed), 0);
    }

    /// Saturated as of now, for the waiters' tests.
    fn saturated(quiet_after: Duration) -> IntakeLoad {
        let load = IntakeLoad::with(4_000.0, quiet_after);
        let start = Instant::now() - Duration::from_millis(200);
        // Up to now, so that the last arrival is recent.
        arrive(&load, start, 10_000, 200);
        load.arrived_at(Instant::now());
        assert!(load.is_saturated());
        load
    }

    #[tokio::test]
    async fn a_waiter_returns_at_once_when_not_saturated() {
        let load = IntakeLoad::with(4_000.0, HOUR);
        load.arrived_at(Instant::now());
        // Waiting for its bound would take an hour.
        tokio::time::timeout(Duration::from_secs(10), load.eased(HOUR))
            .await
            .expect("no wait when the intake is not saturated");
    }

    #[tokio::test]
    async fn a_waiter_is_woken_when_the_intake_eases() {
        let load = saturated(HOUR);
        let waiter = tokio::spawn({
            let load = load.clone();
            async move { load.eased(HOUR).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Arrivals 10 ms apart, in the future as far as the windows go: the rate falls.
        let mut now = Instant::now();
        while load.saturated_at(now) {
            now += Duration::from_millis(10);
            load.arrived_at(now);
        }
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken when the intake eased")
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiter_looks_again_when_a_burst_ends_without_a_request() {
        let load = saturated(Duration::from_millis(20));
        tokio::time::timeout(Duration::from_secs(10), load.eased(HOUR))
            .await
            .expect("eased once no request came for the quiet spell");
        assert!(!load.is_saturated());
    }

    #[tokio::test]
    async fn a_waiter_claims_anyway_after_the_bound() {
        let load = saturated(HOUR);
        let bound = Duration::from_millis(50);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), load.eased(bound))
            .await
            .expect("returns after its bound although still saturated");
        assert!(started.elapsed() >= bound);
        assert!(load.is_saturated());
    }
}
