//! Live progress: one refreshing line on a terminal, plain lines otherwise; number formats.

use std::io::{IsTerminal, Write};

/// Where progress and events go (stdout).
pub struct Display {
    live: bool,
    /// A progress line is on screen without a newline.
    pending: bool,
}

impl Display {
    /// `live`: refresh a progress line (only on a terminal).
    pub fn new(live: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        Self {
            live: live && tty,
            pending: false,
        }
    }

    /// Progress lines are refreshed in place (otherwise printed now and then).
    pub fn refreshing(&self) -> bool {
        self.live
    }

    /// Replaces the progress line.
    pub fn progress(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K{line}");
            self.pending = true;
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// A line that stays (an event, the summary).
    pub fn line(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        if self.pending {
            let _ = write!(out, "\r\x1b[2K");
            self.pending = false;
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Ends a pending progress line.
    pub fn finish(&mut self) {
        if self.pending {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out);
            let _ = out.flush();
            self.pending = false;
        }
    }
}

/// A bar of `width` cells for `value` out of `max`, in eighths (▏▎▍▌▋▊▉█).
pub fn bar(value: f64, max: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let frac = if max > 0.0 {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (frac * (width * 8) as f64).round() as usize;
    let mut s = String::with_capacity(width * 3);
    for i in 0..width {
        let left = eighths.saturating_sub(i * 8);
        s.push(if left >= 8 { '█' } else { PARTS[left] });
    }
    s
}

/// Bytes as "48.2 MB" (decimal units).
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// Bits per second over `secs` as Mbit/s.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / secs / 1e6
    }
}

pub fn ms(d: std::time::Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars() {
        assert_eq!(bar(0.0, 10.0, 4), "    ");
        assert_eq!(bar(10.0, 10.0, 4), "████");
        assert_eq!(bar(20.0, 10.0, 2), "██");
        assert_eq!(bar(5.0, 10.0, 4), "██  ");
        assert_eq!(bar(1.0, 16.0, 2), "▏ ");
        assert_eq!(bar(4.0, 16.0, 2), "▌ ");
        assert_eq!(bar(1.0, 0.0, 2), "  ");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(48_200_000), "48.2 MB");
        assert_eq!(bytes(1_500_000_000), "1.50 GB");
        assert!((mbps(5_000_000, 2.0) - 20.0).abs() < 1e-9);
        assert_eq!(mbps(1, 0.0), 0.0);
    }
}
