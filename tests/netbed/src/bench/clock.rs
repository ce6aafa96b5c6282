//! CLOCK_MONOTONIC: one time axis for this process and the `braid` processes it starts
//! (`braid bench client --json` reports its start on it).

use std::time::Duration;

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seconds from `origin` to `t` (negative when `t` is earlier).
pub fn rel(origin: u64, t: u64) -> f64 {
    (t as f64 - origin as f64) / 1e9
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
