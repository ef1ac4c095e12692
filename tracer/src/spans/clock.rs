//! Kernel timestamps (CLOCK_MONOTONIC ns, from bpf_ktime_get_ns) to wall
//! clock time for export.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock ns at monotonic zero.
    offset_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    pub fn new() -> Self {
        // Read monotonic between two realtime reads to halve the error.
        let a = now_ns(libc::CLOCK_REALTIME);
        let m = now_ns(libc::CLOCK_MONOTONIC);
        let b = now_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: (a + b) / 2 - m,
        }
    }

    /// Monotonic ns shown as ns since the epoch, so tests can read them back.
    #[cfg(test)]
    pub const fn identity() -> Self {
        Self { offset_ns: 0 }
    }

    pub fn to_system_time(self, monotonic_ns: u64) -> SystemTime {
        let wall = (i128::from(monotonic_ns) + self.offset_ns).max(0);
        UNIX_EPOCH + Duration::from_nanos(wall as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_now() {
        let c = Clock::new();
        let mono = now_ns(libc::CLOCK_MONOTONIC) as u64;
        let diff = c
            .to_system_time(mono)
            .duration_since(SystemTime::now())
            .unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(50), "{diff:?}");
    }
}
