//! Time, injected so tests (the crate's and a backend's) can move it by hand.
//!
//! The cache measures lifetimes on the monotonic clock, so a wall-clock jump
//! can neither stretch nor cut an entry's TTL; expiries that come from Warden
//! (`expires_at`, a token's `exp`) are compared with the wall clock.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The monotonic time, for cache lifetimes and refresh intervals.
    fn instant(&self) -> Instant;
    /// The wall-clock time, for comparing with Warden's timestamps.
    fn wall(&self) -> SystemTime;
}

/// The real clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves both of its
/// times forward together; for tests.
#[derive(Debug)]
pub struct ManualClock {
    start: (Instant, SystemTime),
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock reading the real time now, then standing still.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall time reads `wall`.
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            start: (Instant::now(), wall),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves both times forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut elapsed = self.elapsed.lock().unwrap_or_else(|e| e.into_inner());
        *elapsed = elapsed.saturating_add(by);
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn instant(&self) -> Instant {
        // Past Instant's range the clock stops rather than panicking.
        let (start, _) = self.start;
        start.checked_add(self.elapsed()).unwrap_or(start)
    }

    fn wall(&self) -> SystemTime {
        let (_, wall) = self.start;
        wall.checked_add(self.elapsed()).unwrap_or(wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let (i, w) = (clock.instant(), clock.wall());
        assert_eq!((clock.instant(), clock.wall()), (i, w));
        clock.advance(Duration::from_secs(7));
        assert_eq!(clock.instant() - i, Duration::from_secs(7));
        assert_eq!(
            clock.wall().duration_since(w).ok(),
            Some(Duration::from_secs(7))
        );
    }
}
