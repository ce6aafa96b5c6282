//! `braid demo`: the whole story in one process on loopback, no root, no network.
//!
//! A TCP server (source and sink), a Braid gateway that allows only it, two path emulators
//! (WiFi 40 Mbit/s 10 ms one-way, cellular 20 Mbit/s 30 ms) and a client with one interface
//! through each. Data flows both ways; a third of the way in WiFi fails (the emulated link
//! goes down and, by default, the client is told the interface is lost, as an OS would).
//! The demo shows per-path throughput live, the events, a summary and an SVG timeline.

mod live;
mod network;
mod summary;
mod timeline;

use crate::error::{Failure, Result};
use crate::progress::Display;
use crate::{PolicyArg, parse_secs};
use braid::SwitchReason;
use braid_testkit::transfer::Amount;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WIFI_BPS: u64 = 40_000_000;
const CELL_BPS: u64 = 20_000_000;
const WIFI_DELAY: Duration = Duration::from_millis(10);
const CELL_DELAY: Duration = Duration::from_millis(30);
const BUCKET: Duration = Duration::from_millis(100);
/// Stream seeds: upload (client to server) and download.
const SEED_UP: u64 = 1;
const SEED_DOWN: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailureMode {
    /// The link dies and the client is told the interface is gone (like an OS would).
    Event,
    /// The link dies silently: the connection has to notice by itself.
    Silent,
    /// No failure (a baseline).
    None,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Length of the transfer (each way, at the same time).
    #[arg(long, value_name = "SECS", default_value = "12", value_parser = parse_secs)]
    pub seconds: Duration,
    /// Send this many bytes each way instead of sending for --seconds.
    #[arg(long, value_name = "N")]
    pub bytes: Option<u64>,
    /// Service type.
    #[arg(long, value_enum, default_value_t = PolicyArg::Handover)]
    pub policy: PolicyArg,
    /// How WiFi fails a third of the way in.
    #[arg(long, value_enum, default_value_t = FailureMode::Event)]
    pub failure: FailureMode,
    /// Where to write the SVG timeline (default: braid-demo.svg here, else in the temp dir).
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Plain progress lines instead of a refreshing one.
    #[arg(long)]
    pub no_live: bool,
}

/// How much each side sends, starting now: `bytes`, or until `seconds` from now.
fn amount(bytes: Option<u64>, seconds: Duration) -> Amount {
    match bytes {
        Some(n) => Amount::Bytes(n),
        None => Amount::Until(Instant::now() + seconds),
    }
}

/// The failure, in words.
fn failure_text(mode: FailureMode) -> &'static str {
    match mode {
        FailureMode::Event => "WiFi fails a third of the way in (the OS reports it lost)",
        FailureMode::Silent => "WiFi fails silently a third of the way in",
        FailureMode::None => "no failure",
    }
}

pub async fn run(a: DemoArgs) -> Result<i32> {
    if a.bytes == Some(0) {
        return Err(Failure::usage("--bytes must be at least 1"));
    }
    let mut out = Display::new(!a.no_live);
    let mut net = network::Network::start(&a).await?;
    net.describe(&a, &mut out);
    let run = live::watch(&a, &mut net, &mut out).await?;
    let switch = run.switch_to(net.cell_id);
    let svg_path = timeline::write(&a, &run, switch)?;
    summary::report(&a, &run, switch, &svg_path, &mut out)
}

/// The switch to cellular after the failure, if one was reported: (when, why).
type Switch = Option<(Duration, SwitchReason)>;
