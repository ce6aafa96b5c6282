//! `init_logging`: where the `log` records of Braid go.
//!
//! Records never reach a foreign sink from the thread that logged them: that thread may
//! hold the engine's lock, and a sink that calls back into Braid would deadlock. A bounded
//! queue and one delivery thread decouple them; when the queue is full, records are dropped
//! (and counted) rather than slowing the network path down.
//!
//! Without a sink, records go to the platform log: logcat through the `android_logger` crate
//! on Android (it splits lines longer than logcat's ~4 KB limit), os_log through the `oslog`
//! crate on Apple platforms, stderr elsewhere. os_log keeps its messages in sysdiagnose, so
//! addresses and host names are written as `<private>` there unless the app opts in with
//! `set_log_addresses_public(true)` (the `oslog` crate logs the whole line as public).

use crate::error::{BraidError, CallbackError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

/// How much Braid logs, from nothing to everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Failures only.
    Error,
    /// Failures and what looks wrong but is survived.
    Warn,
    /// Also connection and path changes.
    Info,
    /// Also details for debugging.
    Debug,
    /// Everything, per segment: very verbose.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

impl From<log::Level> for LogLevel {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// Receives Braid's log lines instead of the platform log (on one Braid thread, in order).
#[uniffi::export(foreign)]
pub trait LogSink: Send + Sync {
    /// Takes one log line of `level` from Braid's module `target`.
    fn log(&self, level: LogLevel, target: String, message: String) -> Result<(), CallbackError>;
}

struct Line {
    level: LogLevel,
    target: String,
    message: String,
}

struct Router {
    sink: Mutex<Option<SyncSender<Line>>>,
    dropped: AtomicU64,
}

static ROUTER: OnceLock<Router> = OnceLock::new();
/// Whether `log::set_logger` took the router: decided once per process, by the first call.
static INSTALLED: OnceLock<bool> = OnceLock::new();
/// Apple: log addresses and host names in the clear (off: `<private>`).
static ADDRESSES_PUBLIC: AtomicBool = AtomicBool::new(false);

impl log::Log for Router {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let tx = crate::lock(&self.sink).clone();
        match tx {
            Some(tx) => {
                let line = Line {
                    level: r.level().into(),
                    target: r.target().to_string(),
                    message: r.args().to_string(),
                };
                if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => platform::write(r),
        }
    }

    fn flush(&self) {}
}

/// Routes Braid's logs at `level` and above to `sink`, or to the platform log when there
/// is no sink: os_log on Apple platforms, logcat on Android, stderr elsewhere. May be called
/// again to change the level or the sink. Fails, on this call and every later one, if other
/// code in the app installed a different Rust logger first (Braid's logs then go there, and
/// Braid leaves that logger's level alone).
#[uniffi::export(default(sink = None))]
pub fn init_logging(level: LogLevel, sink: Option<Arc<dyn LogSink>>) -> Result<(), BraidError> {
    crate::guard("init_logging", || {
        let router = ROUTER.get_or_init(|| Router {
            sink: Mutex::new(None),
            dropped: AtomicU64::new(0),
        });
        if !*INSTALLED.get_or_init(|| log::set_logger(router).is_ok()) {
            return Err(BraidError::Logging(
                "another Rust logger is already installed in this app; Braid logs go there".into(),
            ));
        }
        let tx = match sink {
            Some(sink) => Some(start_delivery(sink)?),
            None => None,
        };
        *crate::lock(&router.sink) = tx;
        log::set_max_level(level.into());
        Ok(())
    })
}

/// The delivery thread of a sink; it ends when its sender is replaced or dropped.
fn start_delivery(sink: Arc<dyn LogSink>) -> Result<SyncSender<Line>, BraidError> {
    let (tx, rx) = sync_channel::<Line>(1024);
    std::thread::Builder::new()
        .name("braid-log".into())
        .spawn(move || {
            for l in rx {
                // A failing sink has nowhere to report to; keep delivering.
                let _ = sink.log(l.level, l.target, l.message);
            }
        })
        .map_err(|e| BraidError::Logging(format!("cannot start the log thread: {e}")))?;
    Ok(tx)
}

/// Apple platforms: write addresses and host names to os_log in the clear (`true`) or as
/// `<private>` (`false`, the default). Elsewhere it changes nothing.
#[uniffi::export]
pub(crate) fn set_log_addresses_public(public: bool) {
    ADDRESSES_PUBLIC.store(public, Ordering::Relaxed);
}

/// `msg` with every IP address, `ip:port`, `[v6]:port` and host name replaced by
/// `<private>`, the way os_log shows private arguments.
// Used by the os_log path only (and its tests).
#[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
pub(crate) fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut token = String::new();
    for ch in msg.chars() {
        if ch.is_ascii_alphanumeric() || matches!(ch, '.' | ':' | '[' | ']' | '-' | '%') {
            token.push(ch);
        } else {
            flush_token(&mut out, &mut token);
            out.push(ch);
        }
    }
    flush_token(&mut out, &mut token);
    out
}

// Used by the os_log path only (and its tests).
#[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
fn flush_token(out: &mut String, token: &mut String) {
    // Punctuation that ends a sentence is not part of the address.
    let core = token.trim_end_matches(['.', ':']);
    let tail = &token[core.len()..];
    if is_address(core) {
        out.push_str("<private>");
        out.push_str(tail);
    } else {
        out.push_str(token);
    }
    token.clear();
}

/// An IP address, a socket address, or a host name (`host.domain[:port]`).
// Used by the os_log path only (and its tests).
#[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
fn is_address(t: &str) -> bool {
    use std::net::{IpAddr, SocketAddr};
    // `fe80::1%wlan0`: the zone is not part of the address.
    let t = t.split('%').next().unwrap_or(t);
    if t.parse::<IpAddr>().is_ok() || t.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let host = match t.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        Some(_) => return false,
        None => t,
    };
    let labels: Vec<&str> = host.split('.').collect();
    // Two labels or more, a top-level label of letters (not `1.5` or `lib.rs`-like code
    // paths with `::`), each label a DNS label.
    labels.len() >= 2
        && labels.last().is_some_and(|l| {
            l.len() >= 2
                && l.chars().all(|c| c.is_ascii_alphabetic())
                && !matches!(*l, "rs" | "kt" | "swift" | "so")
        })
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Log records dropped because the sink could not keep up.
#[uniffi::export]
pub(crate) fn dropped_log_lines() -> u64 {
    ROUTER
        .get()
        .map(|r| r.dropped.load(Ordering::Relaxed))
        .unwrap_or(0)
}

#[cfg(target_os = "android")]
mod platform {
    use android_logger::{AndroidLogger, Config};
    use std::sync::OnceLock;

    pub(super) fn write(r: &log::Record) {
        static LOG: OnceLock<AndroidLogger> = OnceLock::new();
        // The level was checked by the router; the logger's own filter lets everything by.
        let l = LOG.get_or_init(|| {
            AndroidLogger::new(
                Config::default()
                    .with_tag("braid")
                    .with_max_level(log::LevelFilter::Trace),
            )
        });
        log::Log::log(l, r);
    }
}

#[cfg(any(
    target_os = "ios",
    target_os = "macos",
    target_os = "tvos",
    target_os = "visionos"
))]
mod platform {
    use oslog::{Level, OsLog};
    use std::sync::OnceLock;
    use std::sync::atomic::Ordering;

    pub(super) fn write(r: &log::Record) {
        static LOG: OnceLock<OsLog> = OnceLock::new();
        let log = LOG.get_or_init(|| OsLog::new("org.braid", "braid"));
        let level = match r.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Default,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Debug,
        };
        let msg = r.args().to_string();
        let msg = if super::ADDRESSES_PUBLIC.load(Ordering::Relaxed) {
            msg
        } else {
            super::redact(&msg)
        };
        log.with_level(level, &format!("{}: {msg}", r.target()));
    }
}

#[cfg(not(any(
    target_os = "android",
    target_os = "ios",
    target_os = "macos",
    target_os = "tvos",
    target_os = "visionos"
)))]
mod platform {
    pub(super) fn write(r: &log::Record) {
        eprintln!("[braid {} {}] {}", r.level(), r.target(), r.args());
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn addresses_and_hosts_are_private() {
        assert_eq!(
            redact("connecting to 192.0.2.1:443 via [2001:db8::1]:7000."),
            "connecting to <private> via <private>."
        );
        assert_eq!(
            redact("resolved gw.example.com:4443 to 2001:db8::5, fe80::1%wlan0"),
            "resolved <private> to <private>, <private>"
        );
        assert_eq!(redact("host example.com"), "host <private>");
    }

    #[test]
    fn the_rest_is_kept() {
        for s in [
            "braid::conn: path 3 up (wifi), srtt 12.5 ms",
            "subflow 2 closed: reset",
            "see socket.rs line 4, version 0.1.0",
            "ratio 1.5x, 10:30",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
