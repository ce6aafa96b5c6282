//! `init_logging` when the app already installed another Rust logger: it must say so on
//! every call (not only the first), and leave that logger's level alone. Its own test binary,
//! so the process-wide logger is this test's alone.

use braid_ffi::{BraidError, LogLevel, init_logging};

struct Other;

impl log::Log for Other {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, _: &log::Record) {}
    fn flush(&self) {}
}

static OTHER: Other = Other;

#[test]
fn another_logger_is_reported_every_time() {
    log::set_logger(&OTHER).expect("the first logger of this process");
    log::set_max_level(log::LevelFilter::Warn);
    for attempt in 0..3 {
        match init_logging(LogLevel::Trace, None) {
            Err(BraidError::Logging(m)) => assert!(m.contains("another Rust logger"), "{m}"),
            other => panic!("attempt {attempt}: expected a Logging error, got {other:?}"),
        }
    }
    assert_eq!(log::max_level(), log::LevelFilter::Warn);
}
