//! `init_logging`: where the `log` records of Braid go.
//!
//! Records never reach a foreign sink from the thread that logged them: that thread may
//! hold the engine's lock, and a sink that calls back into Braid would deadlock. A bounded
//! queue and one delivery thread decouple them; when the queue is full, records are dropped
//! (and counted) rather than slowing the network path down.

use crate::error::{BraidError, CallbackError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
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
            None => platform::write(r.level(), r.target(), &r.args().to_string()),
        }
    }

    fn flush(&self) {}
}

/// Routes Braid's logs at `level` and above to `sink`, or to the platform log when there
/// is no sink: os_log on Apple platforms, logcat on Android, stderr elsewhere. May be called
/// again to change the level or the sink. Fails only if other code in the app installed a
/// different Rust logger first.
#[uniffi::export(default(sink = None))]
pub fn init_logging(level: LogLevel, sink: Option<Arc<dyn LogSink>>) -> Result<(), BraidError> {
    let mut fresh = false;
    let router = ROUTER.get_or_init(|| {
        fresh = true;
        Router {
            sink: Mutex::new(None),
            dropped: AtomicU64::new(0),
        }
    });
    if fresh {
        log::set_logger(router).map_err(|_| {
            BraidError::Logging(
                "another Rust logger is already installed in this app; Braid logs go there".into(),
            )
        })?;
    }
    let tx = sink.map(|sink| {
        let (tx, rx) = sync_channel::<Line>(1024);
        // The thread ends when the sender is replaced or dropped.
        let spawned = std::thread::Builder::new()
            .name("braid-log".into())
            .spawn(move || {
                for l in rx {
                    // A failing sink has nowhere to report to; keep delivering.
                    let _ = sink.log(l.level, l.target, l.message);
                }
            });
        (tx, spawned.is_ok())
    });
    let tx = match tx {
        Some((_, false)) => {
            return Err(BraidError::Logging("cannot start the log thread".into()));
        }
        Some((tx, true)) => Some(tx),
        None => None,
    };
    *crate::lock(&router.sink) = tx;
    log::set_max_level(level.into());
    Ok(())
}

/// Log records dropped because the sink could not keep up.
#[uniffi::export]
pub fn dropped_log_lines() -> u64 {
    ROUTER
        .get()
        .map(|r| r.dropped.load(Ordering::Relaxed))
        .unwrap_or(0)
}

#[cfg(target_os = "android")]
mod platform {
    use std::ffi::CString;
    use std::os::raw::{c_char, c_int};

    #[link(name = "log")]
    unsafe extern "C" {
        fn __android_log_write(prio: c_int, tag: *const c_char, text: *const c_char) -> c_int;
    }

    pub fn write(level: log::Level, target: &str, msg: &str) {
        // android/log.h priorities.
        let prio = match level {
            log::Level::Error => 6,
            log::Level::Warn => 5,
            log::Level::Info => 4,
            log::Level::Debug => 3,
            log::Level::Trace => 2,
        };
        let text = format!("{target}: {msg}").replace('\0', " ");
        let (Ok(tag), Ok(text)) = (CString::new("braid"), CString::new(text)) else {
            return;
        };
        // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
        unsafe {
            __android_log_write(prio, tag.as_ptr(), text.as_ptr());
        }
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

    pub fn write(level: log::Level, target: &str, msg: &str) {
        static LOG: OnceLock<OsLog> = OnceLock::new();
        let log = LOG.get_or_init(|| OsLog::new("org.braid", "braid"));
        let level = match level {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Default,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Debug,
        };
        log.with_level(level, &format!("{target}: {msg}"));
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
    pub fn write(level: log::Level, target: &str, msg: &str) {
        eprintln!("[braid {level} {target}] {msg}");
    }
}
