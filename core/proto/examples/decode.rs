//! Decodes a TCP header, a TCP option field or a TCP-in-UDP payload given in hex and prints
//! it the way tcpdump would, one option a line, with the values MPTCP derives from keys.
//!
//! ```text
//! cargo run -p braid-proto --example decode -- [--header|--options|--udp] HEX
//! ```
//!
//! Without a flag, the input is taken as a header when its first 20 bytes hold a data offset
//! of at least 5 that fits the input, and as an option field otherwise.

use std::fmt::Write as _;
use std::process::ExitCode;

use braid_proto::wire::*;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Auto,
    Header,
    Options,
    Udp,
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let mut mode = Mode::Auto;
    let mut hex = String::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--header" => mode = Mode::Header,
            "--options" => mode = Mode::Options,
            "--udp" => mode = Mode::Udp,
            "-h" | "--help" => {
                return Ok("usage: decode [--header|--options|--udp] HEX\n".to_string());
            }
            a if a.starts_with("--") => return Err(format!("unknown flag {a}")),
            a => hex.push_str(a),
        }
    }
    if hex.is_empty() {
        return Err("no input (usage: decode [--header|--options|--udp] HEX)".into());
    }
    let bytes = unhex(&hex)?;
    let mut out = String::new();
    match mode {
        Mode::Header => header(&bytes, &mut out).map_err(|e| format!("TCP header: {e}"))?,
        Mode::Options => {
            options_field(&bytes, &mut out).map_err(|e| format!("TCP options: {e}"))?
        }
        Mode::Udp => udp(&bytes, &mut out).map_err(|e| format!("TCP-in-UDP payload: {e}"))?,
        Mode::Auto => {
            if looks_like_header(&bytes) && header(&bytes, &mut out).is_ok() {
            } else {
                out.clear();
                options_field(&bytes, &mut out).map_err(|e| format!("TCP options: {e}"))?;
            }
        }
    }
    Ok(out)
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'_' | b'\n' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "invalid hex: odd number of digits ({})",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|p| {
            let h =
                std::str::from_utf8(p).map_err(|_| "invalid hex: non-ASCII input".to_string())?;
            u8::from_str_radix(h, 16).map_err(|_| format!("invalid hex: {h:?}"))
        })
        .collect()
}

fn looks_like_header(b: &[u8]) -> bool {
    b.len() >= 20 && {
        let doff = usize::from(b[12] >> 4);
        doff >= 5 && doff * 4 <= b.len()
    }
}

fn header(b: &[u8], out: &mut String) -> Result<(), WireError> {
    let (r, off) = TcpRepr::parse(b)?;
    let _ = writeln!(
        out,
        "TCP {} > {}: Flags [{}], seq {}, ack {}, win {}, urg {}, header {} bytes, payload {} bytes",
        r.src_port,
        r.dst_port,
        r.flags,
        r.seq,
        r.ack,
        r.window,
        r.urgent,
        off,
        b.len() - off
    );
    let _ = writeln!(
        out,
        "  checksum 0x{:04x}",
        u16::from_be_bytes([b[16], b[17]])
    );
    options(&r.options, off - TCP_HEADER_LEN, out);
    Ok(())
}

fn udp(b: &[u8], out: &mut String) -> Result<(), WireError> {
    let (r, off) = parse_udp_payload(b, 0, 0)?;
    let _ = writeln!(
        out,
        "TCP-in-UDP: Flags [{}], seq {}, ack {}, win {}, header {} bytes (TCP {}), payload {} bytes",
        r.flags,
        r.seq,
        r.ack,
        r.window,
        off,
        off + 8,
        b.len() - off
    );
    options(&r.options, off - 12, out);
    Ok(())
}

fn options_field(b: &[u8], out: &mut String) -> Result<(), WireError> {
    let o = TcpOptions::parse(b)?;
    options(&o, b.len(), out);
    Ok(())
}

fn options(o: &TcpOptions, len: usize, out: &mut String) {
    let _ = writeln!(out, "options ({len} bytes):");
    let mut line = |s: String| {
        let _ = writeln!(out, "  {s}");
    };
    if let Some(m) = o.mss {
        line(format!("mss {m}"));
    }
    if o.sack_permitted {
        line("sackOK".into());
    }
    if let Some((val, ecr)) = o.timestamps {
        line(format!("TS val {val} ecr {ecr}"));
    }
    if let Some(ws) = o.window_scale {
        line(format!("wscale {ws}"));
    }
    if !o.sack_blocks.is_empty() {
        let mut s = format!("sack {}", o.sack_blocks.len());
        for (l, r) in o.sack_blocks.iter() {
            let _ = write!(s, " {{{l}:{r}}}");
        }
        line(s);
    }
    for m in o.mptcp_iter() {
        line(mptcp(m));
    }
    if let Some(e) = o.mptcp_rejected {
        line(format!("mptcp (ignored: {e})"));
    }
    for u in o.unknown.iter() {
        let mut s = format!("unknown-{} len {}", u[0], u.len());
        if u.len() > 2 {
            s.push_str(" data 0x");
            s.push_str(&hexs(&u[2..]));
        }
        line(s);
    }
}

fn hexs(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn key(label: &str, k: u64) -> String {
    format!(
        "{label} 0x{k:016x} (token 0x{:08x}, idsn 0x{:016x})",
        token(k),
        idsn(k)
    )
}

fn data_seq(label: &str, d: DataSeq) -> String {
    match d {
        DataSeq::Narrow(v) => format!("{label} {v} (32-bit, 0x{v:08x})"),
        DataSeq::Wide(v) => format!("{label} {v} (64-bit, 0x{v:016x})"),
    }
}

fn mptcp(m: &MptcpOption) -> String {
    match *m {
        MptcpOption::MpCapable(c) => {
            let mut fl = String::new();
            for (f, n) in [
                (MpCapableFlags::A, "A"),
                (MpCapableFlags::B, "B"),
                (MpCapableFlags::C, "C"),
                (MpCapableFlags::H, "H"),
            ] {
                if c.flags.contains(f) {
                    fl.push_str(n);
                }
            }
            let mut s = format!(
                "mptcp capable v{} flags [{fl}] (0x{:02x})",
                c.version, c.flags.0
            );
            match c.keys {
                MpCapableKeys::Syn => s.push_str(" syn"),
                MpCapableKeys::SynAck { sender_key } => {
                    let _ = write!(s, " synack {}", key("sender key", sender_key));
                }
                MpCapableKeys::Ack {
                    sender_key,
                    receiver_key,
                } => {
                    let _ = write!(
                        s,
                        " ack {} {}",
                        key("sender key", sender_key),
                        key("receiver key", receiver_key)
                    );
                }
                MpCapableKeys::AckData {
                    sender_key,
                    receiver_key,
                    data_len,
                    checksum,
                } => {
                    let _ = write!(
                        s,
                        " ack+data {} {} data_len {data_len}",
                        key("sender key", sender_key),
                        key("receiver key", receiver_key)
                    );
                    if let Some(c) = checksum {
                        let _ = write!(s, " csum 0x{c:04x}");
                    }
                }
            }
            s
        }
        MptcpOption::MpJoin(j) => match j {
            MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            } => format!(
                "mptcp join syn id {addr_id} backup {} token 0x{token:08x} nonce 0x{nonce:08x}",
                u8::from(backup)
            ),
            MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => format!(
                "mptcp join synack id {addr_id} backup {} hmac 0x{hmac:016x} nonce 0x{nonce:08x}",
                u8::from(backup)
            ),
            MpJoin::Ack { hmac } => format!("mptcp join ack hmac 0x{}", hexs(&hmac)),
        },
        MptcpOption::Dss(d) => {
            let mut s = String::from("mptcp dss");
            if let Some(a) = d.data_ack {
                let _ = write!(s, " {}", data_seq("ack", a));
            }
            if let Some(m) = d.mapping {
                let _ = write!(
                    s,
                    " {} subseq {} len {}",
                    data_seq("seq", m.dsn),
                    m.ssn,
                    m.data_len
                );
                if m.data_len == 0 {
                    s.push_str(" (infinite)");
                }
                if let Some(c) = m.checksum {
                    let _ = write!(s, " csum 0x{c:04x}");
                }
            }
            if d.data_fin {
                s.push_str(" fin");
            }
            s
        }
        MptcpOption::AddAddr(a) => {
            let mut s = format!(
                "mptcp add-addr{} id {} ",
                if a.is_echo() { " echo" } else { "" },
                a.addr_id
            );
            match (a.addr, a.port) {
                (std::net::IpAddr::V6(v6), Some(p)) => {
                    let _ = write!(s, "[{v6}]:{p}");
                }
                (addr, Some(p)) => {
                    let _ = write!(s, "{addr}:{p}");
                }
                (addr, None) => {
                    let _ = write!(s, "{addr}");
                }
            }
            if let Some(h) = a.hmac {
                let _ = write!(s, " hmac 0x{h:016x}");
            }
            s
        }
        MptcpOption::RemoveAddr(r) => {
            let ids: Vec<String> = r.ids().iter().map(u8::to_string).collect();
            format!("mptcp remove-addr id {}", ids.join(","))
        }
        MptcpOption::MpPrio(p) => {
            format!(
                "mptcp prio {}",
                if p.backup { "backup" } else { "non-backup" }
            )
        }
        MptcpOption::MpFail(f) => format!("mptcp fail seq {} (0x{:016x})", f.dsn, f.dsn),
        MptcpOption::MpFastClose(f) => format!("mptcp fast-close key 0x{:016x}", f.receiver_key),
        MptcpOption::MpTcpRst(r) => {
            let mut fl = String::new();
            for (bit, n) in [
                (MpTcpRst::U, 'U'),
                (MpTcpRst::V, 'V'),
                (MpTcpRst::W, 'W'),
                (MpTcpRst::T, 'T'),
            ] {
                if r.flags & bit != 0 {
                    fl.push(n);
                }
            }
            let reason = match r.reason {
                TcpRstReason::Unspecified => "unspecified",
                TcpRstReason::MptcpError => "mptcp-error",
                TcpRstReason::LackOfResources => "lack-of-resources",
                TcpRstReason::AdministrativelyProhibited => "administratively-prohibited",
                TcpRstReason::TooMuchOutstandingData => "too-much-outstanding-data",
                TcpRstReason::UnacceptablePerformance => "unacceptable-performance",
                TcpRstReason::MiddleboxInterference => "middlebox-interference",
                TcpRstReason::Other(_) => "unknown",
            };
            format!(
                "mptcp tcprst flags [{fl}] reason {reason} ({})",
                r.reason.to_u8()
            )
        }
    }
}
