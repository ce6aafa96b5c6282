//! `braid-netbench`: Braid (the `braid bench` CLI over the UDP and the raw carrier) side by
//! side with the Linux kernel's MPTCP on the two-path namespace testbed, in one run; prints
//! the BENCHMARKS.md section (markdown) and writes SVG timelines. Root only.
//! `cargo xtask bench netns` builds everything and runs it. See `braid_netbed::bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use braid_netbed::bench::plan::Stack;
use braid_netbed::bench::runner::Bench;
use braid_netbed::bench::{braid_peer, scenarios};

const USAGE: &str = "\
usage: braid-netbench [OPTIONS]

  --braid PATH        the braid CLI (default: next to this binary, else on PATH)
  --repeats N         runs per stack and case (default 3)
  --only A,B          scenarios to run (default all): aggregate, wifi-down, wifi-silent,
                      interactive, failback
  --stacks A,B        kernel, braid-udp, braid-raw (default all)
  --svg-dir DIR       where the SVG timelines go (default docs/bench)
  --svg-href PREFIX   how the markdown links them (default docs/bench)
  --out FILE          write the markdown there (default stdout)
";

struct Opts {
    braid: PathBuf,
    repeats: usize,
    only: Vec<String>,
    stacks: Vec<Stack>,
    svg_dir: PathBuf,
    svg_href: String,
    out: Option<PathBuf>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        braid: braid_peer::default_binary(),
        repeats: 3,
        only: scenarios::ALL.iter().map(|s| s.to_string()).collect(),
        stacks: Stack::ALL.to_vec(),
        svg_dir: "docs/bench".into(),
        svg_href: "docs/bench".into(),
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--braid" => o.braid = val()?.into(),
            "--repeats" => {
                o.repeats = val()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--repeats: a positive number")?
            }
            "--only" => {
                o.only = val()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o
                    .only
                    .iter()
                    .find(|s| !scenarios::ALL.contains(&s.as_str()))
                {
                    return Err(format!("unknown scenario '{bad}'"));
                }
            }
            "--stacks" => {
                let v = val()?;
                o.stacks = Vec::new();
                for s in v.split(',') {
                    let st = Stack::ALL
                        .into_iter()
                        .find(|x| x.name() == s.trim())
                        .ok_or_else(|| format!("unknown stack '{s}'"))?;
                    o.stacks.push(st);
                }
            }
            "--svg-dir" => o.svg_dir = val()?.into(),
            "--svg-href" => o.svg_href = val()?,
            "--out" => o.out = Some(val()?.into()),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("braid-netbench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !braid_netbed::is_root() {
        eprintln!(
            "braid-netbench: needs root (network namespaces, TUN devices, raw sockets); run it as root or with sudo"
        );
        return ExitCode::from(1);
    }
    let started = Instant::now();
    let bench = match Bench::up(o.braid.clone()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("braid-netbench: cannot set up the testbed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = scenarios::Ctx {
        bench: &bench,
        repeats: o.repeats,
        stacks: o.stacks.clone(),
        svg_dir: o.svg_dir.clone(),
        svg_href: o.svg_href.clone(),
    };
    let mut body = String::new();
    let mut missing = Vec::new();
    for name in scenarios::ALL {
        if !o.only.iter().any(|s| s == name) {
            missing.push(format!("{name} (not selected)"));
            continue;
        }
        match ctx.run(name) {
            Ok(md) => body.push_str(&md),
            Err(e) => {
                eprintln!("braid-netbench: {name}: {e}");
                missing.push(format!("{name} (failed: {e})"));
            }
        }
    }
    drop(bench);
    let mut md = intro(&o);
    if !missing.is_empty() {
        md.push_str(&format!(
            "**Missing from this run:** {}.\n\n",
            missing.join(", ")
        ));
    }
    md.push_str(&body);
    md.push_str(&format!(
        "Total time of the run: {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));
    match &o.out {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &md) {
                eprintln!("braid-netbench: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{md}"),
    }
    ExitCode::SUCCESS
}

fn intro(o: &Opts) -> String {
    format!(
        "Testbed: `braid-netbed` namespaces, WiFi 40 Mbit/s 10 ms one way, cellular 20 Mbit/s \
         30 ms one way (TUN links relayed in userspace, drop-tail queues of max(20 ms, 2 × delay)). \
         Stacks: **kernel** = Linux MPTCP client in the phone namespace (`IPPROTO_MPTCP`, a \
         `subflow` endpoint on the cellular address) to a kernel MPTCP listener; **braid-udp** = \
         `braid bench client -i c-wifi:wifi -i c-cell:cellular` (TCP-in-UDP) to `braid bench \
         server`; **braid-raw** = the same with `--carrier raw` (MPTCP on the wire). The Braid \
         client runs as a process in the phone namespace and follows rtnetlink, so it hears \
         \"interface lost\" when `c-wifi` goes down. Every stack is measured the same way: the \
         receiver's byte counter sampled every 10 ms. {} run(s) per stack and case, \
         interleaved; tables give min / median / max, the per-run values, and Braid's median \
         over the kernel's from this same run.\n\n",
        o.repeats
    )
}
