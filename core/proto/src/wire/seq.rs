//! 32-bit TCP sequence numbers with wrap-around (RFC 1982 style) comparison.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, Sub};

/// A TCP sequence or acknowledgement number.
///
/// Ordering is by the signed 32-bit difference, so `SeqNum(1) > SeqNum(u32::MAX)`. Two numbers
/// exactly 2^31 apart are incomparable (`partial_cmp` is `None`): neither can be said to come
/// first, and claiming one would make `<` asymmetric.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self + n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn wrapping_add(self, n: u32) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// `self - n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn wrapping_sub(self, n: u32) -> Self {
        Self(self.0.wrapping_sub(n))
    }

    /// Signed distance `self - other`: positive when `self` is after `other`.
    #[inline]
    pub const fn diff(self, other: Self) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Unsigned distance from `earlier` forward to `self` (e.g. bytes in flight `snd_nxt - snd_una`).
    #[inline]
    pub const fn since(self, earlier: Self) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// The later of the two (`self` when incomparable).
    #[inline]
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        if other.diff(self) > 0 { other } else { self }
    }

    /// The earlier of the two (`self` when incomparable).
    #[inline]
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        if other.diff(self) < 0 && other.diff(self) != i32::MIN {
            other
        } else {
            self
        }
    }

    /// `start <= self < end` in sequence space.
    #[inline]
    pub fn in_window(self, start: Self, end: Self) -> bool {
        self.since(start) < end.since(start)
    }
}

impl PartialOrd for SeqNum {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.diff(*other) {
            0 => Some(Ordering::Equal),
            i32::MIN => None,
            d if d > 0 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = Self;
    #[inline]
    fn add(self, n: u32) -> Self {
        self.wrapping_add(n)
    }
}

impl Sub<u32> for SeqNum {
    type Output = Self;
    #[inline]
    fn sub(self, n: u32) -> Self {
        self.wrapping_sub(n)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNum({})", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::SeqNum;

    #[test]
    fn wraps() {
        let a = SeqNum(u32::MAX - 1);
        let b = a + 5;
        assert_eq!(b, SeqNum(3));
        assert!(b > a);
        assert!(a < b);
        assert_eq!(b.diff(a), 5);
        assert_eq!(a.diff(b), -5);
        assert_eq!(b.since(a), 5);
        assert_eq!(a.max(b), b);
        assert_eq!(b.max(a), b);
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(a), a);
        assert!(SeqNum(2).in_window(a, b));
        assert!(!b.in_window(a, b));
        assert_eq!(b - 5, a);
    }

    #[test]
    fn half_space_is_incomparable() {
        let a = SeqNum(0);
        let b = SeqNum(1 << 31);
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
        assert!(matches!((a < b, b < a, a > b), (false, false, false)));
        assert_eq!(a.max(b), a);
        assert_eq!(b.max(a), b);
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(a), b);
    }
}
