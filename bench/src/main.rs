//! `braid-bench cpu`: bytes moved per CPU second on loopback, one connection, Braid (UDP
//! carrier, the public API) against quinn (rustls/ring, default CUBIC, one uni stream,
//! 128 KiB writes), run back to back in one invocation as separate processes, repeated, with
//! min / median / max and the ratio; kernel TCP over loopback is measured the same way in the
//! same run, for reference. `cpu --markdown` prints the BENCHMARKS.md section.
//!
//! `braid-bench gateway-rate`: new connections per second through a `braid gateway` with 1
//! and N workers (see `gateway_rate`). `braid-bench gateway-idle`: memory per idle relayed
//! connection and bulk goodput beside them (see `gateway_idle`).
//!
//! `braid-bench attack`: floods and forged segments against an in-process gateway (see
//! `braid_bench::attack`); `attack --markdown` prints the "Under attack" section.

mod attack_main;
mod cpu;
mod gateway_idle;
mod gateway_rate;
mod loopback;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("cpu") => cpu::orchestrate(&args[1..]),
        Some("run-braid") => cpu::run_one(cpu::Stack::Braid, &args[1..]),
        Some("run-quinn") => cpu::run_one(cpu::Stack::Quinn, &args[1..]),
        Some("run-tcp") => cpu::run_one(cpu::Stack::KernelTcp, &args[1..]),
        Some("attack") => attack_main::run(&args[1..]),
        Some("gateway-rate") => gateway_rate::run(&args[1..]),
        Some("gateway-idle") => gateway_idle::run(&args[1..]),
        Some("idle-clients") => gateway_idle::helper(&args[1..]),
        Some("rate-clients") => gateway_rate::helper(&args[1..]),
        _ => Err(
            "usage: braid-bench cpu [--bytes N] [--repeats N] [--markdown]\n       \
             braid-bench attack [--seconds N] [--repeats N] [--bytes N] [--rate N] \
             [--syn-rate N] [--markdown]\n       \
             braid-bench gateway-rate --braid PATH [--workers 1,2] [--seconds N] \
             [--concurrency N] [--clients N] [--repeats N] [--bulk N] [--markdown]\n       \
             braid-bench gateway-idle --braid PATH [--connections 1000,10000] [--paths N] \
             [--bulk-bytes N] [--markdown]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("braid-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
