//! `braid-bench attack [--seconds N] [--repeats N] [--bytes N] [--markdown]`: the attack
//! scenarios of `braid_bench::attack`, repeated, with the BENCHMARKS.md "Under attack"
//! section on stdout (`--markdown`) or a summary on stderr.

use braid_bench::attack::{self, FloodConfig, SynFloodConfig};
use std::time::Duration;

struct Args {
    seconds: u64,
    repeats: usize,
    bytes: u64,
    rate: u64,
    syn_rate: u64,
    markdown: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        seconds: 10,
        repeats: 3,
        bytes: 20_000_000,
        rate: 3000,
        syn_rate: 3000,
        markdown: false,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{what} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{what}: not a number: '{v}'"))
        };
        match k.as_str() {
            "--seconds" => a.seconds = num("--seconds")?,
            "--repeats" => a.repeats = num("--repeats")?.max(1) as usize,
            "--bytes" => a.bytes = num("--bytes")?,
            "--rate" => a.rate = num("--rate")?,
            "--syn-rate" => a.syn_rate = num("--syn-rate")?,
            "--markdown" => a.markdown = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(a)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut md = String::new();
        md.push_str(&format!(
            "Gateway, attacker and honest clients in one process on loopback (the gateway with \
             its default limits); memory is this process's resident set (peak during the \
             flood minus just before it). {} repeats.\n\n",
            a.repeats
        ));

        // Reassembly flood.
        let cfg = FloodConfig {
            rate: a.rate,
            duration: Duration::from_secs(a.seconds),
            probe_every: Duration::from_millis(100),
            probe_limit: Duration::from_secs(2),
        };
        md.push_str(&format!(
            "**Reassembly flood**: one client with a connection through the gateway sends \
             1-byte out-of-order DSS pieces (never deliverable, never adjacent) at {}/s for \
             {} s; another client sends a 64-byte echo through the same gateway every 100 ms \
             (a probe with no answer within 2 s counts as failed).\n\n\
             | run | pieces sent | rate | gateway SACKed them | echo min | echo median | echo max | failed probes | memory growth |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            a.rate, a.seconds
        ));
        let mut all = Vec::new();
        for i in 0..a.repeats {
            let r = attack::reassembly_flood(&cfg).await?;
            let (min, med, max) = attack::spread(&r.probes);
            eprintln!(
                "reassembly flood {}: {} pieces at {:.0}/s, echo {min:?}/{med:?}/{max:?}, {} failed, memory +{} KB",
                i + 1,
                r.pieces,
                r.achieved_rate,
                r.probe_failures,
                r.rss_growth / 1024
            );
            md.push_str(&format!(
                "| {} | {} | {:.0}/s | {} | {} | {} | {} | {} of {} | {:.1} MB |\n",
                i + 1,
                r.pieces,
                r.achieved_rate,
                if r.sacked > 0 { "yes" } else { "no" },
                ms(min),
                ms(med),
                ms(max),
                r.probe_failures,
                r.probes.len(),
                r.rss_growth as f64 / (1 << 20) as f64
            ));
            all.extend(r.probes);
        }
        let (min, med, max) = attack::spread(&all);
        md.push_str(&format!(
            "\nEcho over all runs: min {}, median {}, max {} (target: under 1 s; memory growth \
             under 5 MB).\n\n",
            ms(min),
            ms(med),
            ms(max)
        ));

        // SYN flood.
        let scfg = SynFloodConfig {
            rate: a.syn_rate,
            honest: 5,
            rtt: Duration::from_millis(100),
            limit: Duration::from_secs(10),
        };
        md.push_str(&format!(
            "**SYN flood**: {}/s SYNs with MP_CAPABLE, each from a new port on a different \
             127/8 address, nobody answering the SYN/ACKs; 5 honest clients behind a 100 ms \
             RTT emulated path start 200 ms apart and must connect through the gateway and get \
             an echo back within 10 s.\n\n\
             | run | SYNs sent | rate | honest clients that connected | connect + echo min / median / max |\n\
             |---|---|---|---|---|\n",
            a.syn_rate
        ));
        for i in 0..a.repeats {
            let r = attack::syn_flood(&scfg).await?;
            let (min, med, max) = attack::spread(&r.connect_times);
            eprintln!(
                "SYN flood {}: {} SYNs at {:.0}/s, {} of {} honest connects",
                i + 1,
                r.syns,
                r.achieved_rate,
                r.honest_ok,
                r.honest
            );
            let times = if r.connect_times.is_empty() {
                "-".to_string()
            } else {
                format!("{} / {} / {}", ms(min), ms(med), ms(max))
            };
            md.push_str(&format!(
                "| {} | {} | {:.0}/s | {} of {} | {} |\n",
                i + 1,
                r.syns,
                r.achieved_rate,
                r.honest_ok,
                r.honest,
                times
            ));
        }

        // Forged segments.
        md.push_str(&format!(
            "\n**Forged segments**: an attacker that knows only the WiFi subflow's UDP 4-tuple \
             (random sequence numbers, no keys) sends each attack in both directions a quarter \
             of the way into a {} MB echo through the gateway over two emulated paths (WiFi \
             40 Mbit/s 10 ms, cellular 20 Mbit/s 30 ms, aggregate).\n\n\
             | attack | datagrams | finished | bytes intact | paths down | backup flag changed | time |\n\
             |---|---|---|---|---|---|---|\n",
            a.bytes / 1_000_000
        ));
        for r in attack::forged_segments(a.bytes).await? {
            eprintln!("forged {}: {:?}", r.attack, r);
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.2} s |\n",
                r.attack,
                r.datagrams,
                if r.completed { "yes" } else { "**no**" },
                if r.intact { "yes" } else { "**no**" },
                r.paths_down,
                if r.backup_changed { "**yes**" } else { "no" },
                r.took.as_secs_f64()
            ));
        }
        if a.markdown {
            print!("{md}");
        }
        Ok(())
    })
}
