//! Conversion between 32-bit wire sequence numbers and the unwrapped 64-bit offsets the engine
//! uses internally. Unwrapping once at the edge keeps every comparison inside the engine a plain
//! integer comparison.

#![warn(missing_docs, unreachable_pub)]

/// Expands a 32-bit value to the 64-bit number closest to `reference` that has the same low
/// 32 bits. Values more than 2^31 away are ambiguous by construction; the nearest wins.
pub fn unwrap32(value: u32, reference: u64) -> u64 {
    let base = reference & !0xffff_ffff;
    let candidate = base | value as u64;
    let half = 1u64 << 31;
    // Saturating and checked: references near 2^64 come only from forged 64-bit DSNs, and
    // must not overflow in any build; the nearest value that fits wins there.
    if candidate.saturating_add(half) < reference {
        candidate.checked_add(1 << 32).unwrap_or(candidate)
    } else if candidate > reference.saturating_add(half) && candidate >= (1 << 32) {
        candidate - (1 << 32)
    } else {
        candidate
    }
}

/// Offset `off` from an initial sequence number `isn`, as it goes on the wire.
pub fn to_wire(isn: u32, off: u64) -> u32 {
    isn.wrapping_add(off as u32)
}

/// A wire sequence number as an offset from `isn`, expanded near `reference` (an offset).
pub fn from_wire(isn: u32, seq: u32, reference: u64) -> u64 {
    unwrap32(seq.wrapping_sub(isn), reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrap_near_reference() {
        assert_eq!(unwrap32(5, 0), 5);
        assert_eq!(unwrap32(0xffff_fff0, 0), 0xffff_fff0, "nothing below zero");
        assert_eq!(unwrap32(3, 0xffff_fff0), 0x1_0000_0003, "wraps forward");
        assert_eq!(
            unwrap32(0xffff_fff0, 0x1_0000_0003),
            0xffff_fff0,
            "wraps backward"
        );
        assert_eq!(unwrap32(0x8000_0000, 0x1_0000_0000), 0x1_8000_0000);
    }

    #[test]
    fn wire_round_trip_across_isn_wrap() {
        let isn = 0xffff_ff00;
        for off in [0u64, 1, 0xff, 0x100, 0x1_0000_0000, 0x1_2345_6789] {
            let w = to_wire(isn, off);
            assert_eq!(from_wire(isn, w, off.saturating_sub(1000)), off);
            assert_eq!(from_wire(isn, w, off + 1000), off);
        }
    }
}
