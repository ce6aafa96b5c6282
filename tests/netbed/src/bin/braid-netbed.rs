//! `braid-netbed`: the two-path phone testbed for humans and benchmark scripts.
//!
//! The links are relayed by a process (TUN devices + a relay thread), so `up` keeps running:
//! in the foreground by default, or detached with `--daemon`. The running `up` listens on a
//! Unix socket, `/run/braid-netbed/NAME.sock`; the other subcommands send it one line and print
//! the answer. `down` asks it to tear down and exit (or, if it died, removes its namespaces).
//! See tests/netbed/README.md.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use braid_netbed::{
    Direction, Endpoint, Link, LinkConfig, LinkSetup, Side, Testbed, TestbedConfig,
    default_link_config, delete_namespace, namespace_exists,
};

const STATE_DIR: &str = "/run/braid-netbed";
const DEFAULT_NAME: &str = "braid";

const USAGE: &str = "\
usage: braid-netbed [--name NAME] COMMAND

  up [--daemon] [OPTIONS]   build the testbed and relay its links until `down` (or Ctrl-C)
      --wifi-rate MBIT  --wifi-delay MS  --wifi-loss PERCENT   (default 40, 10, 0)
      --cell-rate MBIT  --cell-delay MS  --cell-loss PERCENT   (default 20, 30, 0)
      --endpoint none|subflow|backup|fullmesh   phone MPTCP endpoint on c-cell (default subflow)
      --checksum                                 net.mptcp.checksum_enabled=1 on both sides
  down                      stop the running `up` and delete the namespaces
  status                    links, interface states, counters, MPTCP endpoints
  linkdown wifi|cell        real link loss: phone interface down + relay drops
  linkup wifi|cell          interface up, routes restored, relay passes again
  loss wifi|cell on|off     silent loss: relay drops both ways, interfaces stay up
  set wifi|cell up|down|both [rate=MBIT] [delay=MS] [loss=PERCENT] [queue=MS]
  exec phone|server CMD...  run CMD inside the namespace (ip netns exec)

Namespaces: NAME-phone, NAME-server (NAME defaults to `braid`). Rates in Mbit/s (0 = unlimited),
delays in ms one way, loss in percent.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("braid-netbed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> io::Result<ExitCode> {
    let mut args = args.to_vec();
    let mut name = DEFAULT_NAME.to_string();
    if args.first().map(String::as_str) == Some("--name") {
        if args.len() < 2 {
            return Err(invalid("--name needs a value"));
        }
        name = args[1].clone();
        args.drain(..2);
    }
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("NAME: 1-32 characters out of a-z 0-9 -"));
    }
    let paths = Paths::new(&name);
    let Some((cmd, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    match cmd.as_str() {
        "up" => cmd_up(&paths, rest),
        "down" => cmd_down(&paths),
        "exec" => cmd_exec(&paths, rest),
        "status" | "linkdown" | "linkup" | "loss" | "set" => {
            let line = args.join(" ");
            print!("{}", request(&paths, &line)?);
            Ok(ExitCode::SUCCESS)
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(invalid(&format!("unknown command `{other}`\n{USAGE}"))),
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

struct Paths {
    name: String,
    phone_ns: String,
    server_ns: String,
    sock: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

impl Paths {
    fn new(name: &str) -> Paths {
        let dir = PathBuf::from(STATE_DIR);
        Paths {
            name: name.to_string(),
            phone_ns: format!("{name}-phone"),
            server_ns: format!("{name}-server"),
            sock: dir.join(format!("{name}.sock")),
            pid: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.log")),
        }
    }

    /// The pid in the pidfile if that process is alive (not a zombie) and is braid-netbed.
    fn running_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.chars().next()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ours = String::from_utf8_lossy(&cmdline).contains("braid-netbed");
        (state != 'Z' && state != 'X' && ours).then_some(pid)
    }
}

// ---------------------------------------------------------------- up

struct UpOptions {
    daemon: bool,
    cfg: TestbedConfig,
    endpoint: Option<&'static str>,
    checksum: bool,
}

fn parse_up(args: &[String], paths: &Paths) -> io::Result<UpOptions> {
    let mut cfg = TestbedConfig {
        phone_ns: Some(paths.phone_ns.clone()),
        server_ns: Some(paths.server_ns.clone()),
        ..TestbedConfig::default()
    };
    let mut params = [(40.0, 10.0, 0.0), (20.0, 30.0, 0.0)]; // (Mbit/s, ms, %) wifi, cell
    let mut opts = UpOptions {
        daemon: false,
        cfg: TestbedConfig::default(),
        endpoint: Some("subflow"),
        checksum: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| invalid(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--daemon" | "-d" => opts.daemon = true,
            "--checksum" => opts.checksum = true,
            "--endpoint" => {
                opts.endpoint = match value()?.as_str() {
                    "none" => None,
                    "subflow" => Some("subflow"),
                    "backup" => Some("backup"),
                    "fullmesh" => Some("fullmesh"),
                    other => return Err(invalid(&format!("unknown endpoint kind `{other}`"))),
                }
            }
            opt => {
                let (link, what) = opt
                    .strip_prefix("--")
                    .and_then(|o| o.split_once('-'))
                    .and_then(|(l, w)| Some((Link::parse(l)?, w)))
                    .ok_or_else(|| invalid(&format!("unknown option `{opt}`\n{USAGE}")))?;
                let v = number(value()?)?;
                let p = &mut params[link.index()];
                match what {
                    "rate" => p.0 = v,
                    "delay" => p.1 = v,
                    "loss" => p.2 = v,
                    _ => return Err(invalid(&format!("unknown option `{opt}`"))),
                }
            }
        }
    }
    for link in Link::ALL {
        let (rate, delay, loss) = params[link.index()];
        let mut setup = LinkSetup::symmetric(mbit(rate), ms(delay));
        for dir in Direction::BOTH {
            let c = setup.get_mut(dir);
            c.loss = percent(loss)?;
        }
        *cfg.link_mut(link) = setup;
    }
    opts.cfg = cfg;
    Ok(opts)
}

fn number(s: &str) -> io::Result<f64> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| invalid(&format!("`{s}` is not a non-negative number")))
}

fn mbit(v: f64) -> u64 {
    (v * 1e6).round() as u64
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

fn percent(v: f64) -> io::Result<f64> {
    if v > 100.0 {
        return Err(invalid("loss is a percentage, 0..100"));
    }
    Ok(v / 100.0)
}

fn cmd_up(paths: &Paths, args: &[String]) -> io::Result<ExitCode> {
    let opts = parse_up(args, paths)?;
    std::fs::create_dir_all(STATE_DIR)?;
    if let Some(pid) = paths.running_pid() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "testbed `{}` is already up (pid {pid}); run `braid-netbed down` first",
                paths.name
            ),
        ));
    }
    remove_leftovers(paths)?;
    if opts.daemon {
        return start_daemon(paths, args);
    }
    serve(paths, &opts)?;
    Ok(ExitCode::SUCCESS)
}

/// Namespaces and state files of an `up` that died without cleaning up.
fn remove_leftovers(paths: &Paths) -> io::Result<()> {
    for ns in [&paths.phone_ns, &paths.server_ns] {
        if delete_namespace(ns)? {
            eprintln!("braid-netbed: removed leftover namespace {ns}");
        }
    }
    let _ = std::fs::remove_file(&paths.sock);
    let _ = std::fs::remove_file(&paths.pid);
    Ok(())
}

/// Re-runs `up` (without --daemon) detached, logging to NAME.log, and waits until it answers.
fn start_daemon(paths: &Paths, args: &[String]) -> io::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(&paths.log)?;
    let child_args: Vec<&String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "--daemon" | "-d"))
        .collect();
    let mut child = Command::new(exe)
        .args(["--name", &paths.name, "up"])
        .args(child_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0) // not killed by the terminal's Ctrl-C
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if request(paths, "ping").is_ok() {
            println!(
                "braid-netbed: `{}` is up (pid {}, log {}); stop it with `braid-netbed{} down`",
                paths.name,
                child.id(),
                paths.log.display(),
                name_arg(paths)
            );
            print!("{}", request(paths, "status")?);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
            return Err(io::Error::other(format!(
                "the testbed process exited ({status}):\n{log}"
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "no answer from the testbed process after 30 s (see {})",
                paths.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn name_arg(paths: &Paths) -> String {
    if paths.name == DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {}", paths.name)
    }
}

/// Blocks SIGINT/SIGTERM/SIGHUP in this thread (and so in every thread spawned later) and
/// returns the set, for a thread to `sigwait` on. Child processes get a clean mask from std.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the sig* functions only write to the set we own, and
    // pthread_sigmask changes this thread's mask (no old mask requested).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Runs the testbed in this process and serves control requests until `down` or a signal.
fn serve(paths: &Paths, opts: &UpOptions) -> io::Result<()> {
    let signals = block_signals();
    let tb = Testbed::up(opts.cfg.clone())?;
    if let Some(kind) = opts.endpoint {
        let ep = Endpoint::on(Side::Phone, Link::Cell).subflow();
        let ep = match kind {
            "backup" => ep.backup(),
            "fullmesh" => ep.fullmesh(),
            _ => ep,
        };
        tb.add_endpoint(Side::Phone, &ep)?;
    }
    if opts.checksum {
        for side in [Side::Phone, Side::Server] {
            tb.set_mptcp_checksum(side, true)?;
        }
    }
    let listener = UnixListener::bind(&paths.sock)?;
    std::fs::write(&paths.pid, format!("{}\n", std::process::id()))?;

    let sock_path = paths.sock.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `signals` is an initialised set and `sig` a valid out-pointer.
            let rc = unsafe { libc::sigwait(&signals, &mut sig) };
            if rc == 0 {
                eprintln!("braid-netbed: signal {sig}, going down");
                if let Ok(mut s) = UnixStream::connect(&sock_path) {
                    let _ = s.write_all(b"down\n");
                }
            }
        })?;

    println!("{}", status(&tb, paths));
    println!(
        "braid-netbed: `{}` is up; Ctrl-C or `braid-netbed{} down` stops it",
        paths.name,
        name_arg(paths)
    );
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            continue;
        }
        let line = line.trim();
        if line == "down" {
            let result = tb.down();
            let _ = std::fs::remove_file(&paths.sock);
            let _ = std::fs::remove_file(&paths.pid);
            let reply = match &result {
                Ok(()) => "ok: down\n".to_string(),
                Err(e) => format!("error: {e}\n"),
            };
            let _ = conn.write_all(reply.as_bytes());
            eprintln!("braid-netbed: `{}` is down", paths.name);
            return result;
        }
        let reply = match handle(&tb, paths, line) {
            Ok(text) => format!("ok\n{text}"),
            Err(e) => format!("error: {e}\n"),
        };
        let _ = conn.write_all(reply.as_bytes());
    }
    Ok(())
}

fn link_arg(s: Option<&&str>) -> io::Result<Link> {
    s.and_then(|s| Link::parse(s))
        .ok_or_else(|| invalid("expected a link: wifi or cell"))
}

/// One control request (everything except `down`).
fn handle(tb: &Testbed, paths: &Paths, line: &str) -> io::Result<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["ping"] => Ok(String::new()),
        ["status"] => Ok(status(tb, paths)),
        ["linkdown", rest @ ..] => {
            let link = link_arg(rest.first())?;
            tb.link_down(link)?;
            Ok(format!("{link} is down (c-{link} down, relay dropping)\n"))
        }
        ["linkup", rest @ ..] => {
            let link = link_arg(rest.first())?;
            tb.link_up(link)?;
            Ok(format!("{link} is up\n"))
        }
        ["loss", link, onoff] => {
            let link = link_arg(Some(link))?;
            let on = match *onoff {
                "on" => true,
                "off" => false,
                _ => return Err(invalid("loss LINK on|off")),
            };
            tb.silent_loss(link, on);
            Ok(format!(
                "{link}: silent loss {}\n",
                if on { "on" } else { "off" }
            ))
        }
        ["set", link, dirs, settings @ ..] => {
            let link = link_arg(Some(link))?;
            let dirs: &[Direction] = match *dirs {
                "up" => &[Direction::Up],
                "down" => &[Direction::Down],
                "both" => &Direction::BOTH,
                _ => return Err(invalid("set LINK up|down|both key=value...")),
            };
            let mut out = String::new();
            for &dir in dirs {
                let cfg = apply_settings(tb.link_config(link, dir), settings)?;
                out.push_str(&format!("{link} {}: {}\n", dir.name(), describe(&cfg)));
                tb.set_link(link, dir, cfg);
            }
            Ok(out)
        }
        _ => Err(invalid(&format!("unknown request `{line}`"))),
    }
}

fn apply_settings(mut cfg: LinkConfig, settings: &[&str]) -> io::Result<LinkConfig> {
    let mut queue_ms = None;
    let mut rate_or_delay_changed = false;
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| invalid(&format!("`{s}`: expected key=value")))?;
        let v = number(v)?;
        match k {
            "rate" => {
                cfg.rate_bps = mbit(v);
                rate_or_delay_changed = true;
            }
            "delay" => {
                cfg.delay = ms(v);
                rate_or_delay_changed = true;
            }
            "loss" => cfg.loss = percent(v)?,
            "queue" => queue_ms = Some(v.round() as u64),
            _ => {
                return Err(invalid(&format!(
                    "unknown setting `{k}` (rate, delay, loss, queue)"
                )));
            }
        }
    }
    let queue = match queue_ms {
        Some(q) => {
            LinkConfig::new(cfg.rate_bps, cfg.delay)
                .with_queue_ms(q)
                .queue_limit_bytes
        }
        None if rate_or_delay_changed => {
            default_link_config(cfg.rate_bps, cfg.delay).queue_limit_bytes
        }
        None => cfg.queue_limit_bytes,
    };
    cfg.queue_limit_bytes = queue;
    Ok(cfg)
}

fn describe(cfg: &LinkConfig) -> String {
    let rate = if cfg.rate_bps == 0 {
        "unlimited".to_string()
    } else {
        format!("{:.1} Mbit/s", cfg.rate_bps as f64 / 1e6)
    };
    format!(
        "{rate}, {:.1} ms, queue {} B, loss {:.2} %",
        cfg.delay.as_secs_f64() * 1e3,
        cfg.queue_limit_bytes,
        cfg.loss * 100.0
    )
}

fn status(tb: &Testbed, paths: &Paths) -> String {
    let mut out = format!(
        "testbed `{}`: phone namespace {}, server namespace {}\n",
        paths.name,
        tb.ns_name(Side::Phone),
        tb.ns_name(Side::Server)
    );
    for link in Link::ALL {
        let state = match tb.interface_is_up(Side::Phone, link) {
            Ok(true) if tb.is_silent(link) => "UP, silent loss",
            Ok(true) => "UP",
            Ok(false) => "DOWN",
            Err(_) => "?",
        };
        out.push_str(&format!(
            "{link}: phone {} {}/24 <-> server {} {}/24, {state}\n",
            link.iface(Side::Phone),
            link.addr(Side::Phone),
            link.iface(Side::Server),
            link.addr(Side::Server),
        ));
        let c = tb.counters(link);
        for dir in Direction::BOTH {
            let d = c.get(dir);
            out.push_str(&format!(
                "  {:<4} {}; delivered {} pkts {} B, dropped {} pkts (queue {}, loss {}, down {}, in flight {})\n",
                dir.name(),
                describe(&tb.link_config(link, dir)),
                d.delivered().packets,
                d.delivered().bytes,
                d.dropped().packets,
                d.model.dropped_queue.packets,
                d.model.dropped_random.packets,
                d.model.dropped_down.packets,
                d.model.lost_in_flight.packets,
            ));
        }
    }
    for side in [Side::Phone, Side::Server] {
        let show = |args: &[&str]| -> String {
            tb.command(side, "ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
                .unwrap_or_default()
        };
        out.push_str(&format!(
            "{side} mptcp: {}; endpoints: {}\n",
            show(&["mptcp", "limits", "show"]),
            show(&["mptcp", "endpoint", "show"]).replace('\n', " | ")
        ));
    }
    out
}

// ---------------------------------------------------------------- client side

/// Sends one request line to the running `up` and returns its answer (after the "ok" line).
fn request(paths: &Paths, line: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(&paths.sock).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "testbed `{}` is not running ({}: {e}); start it with `braid-netbed{} up`",
                paths.name,
                paths.sock.display(),
                name_arg(paths)
            ),
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    io::Read::read_to_string(&mut s, &mut reply)?;
    match reply.split_once('\n') {
        Some(("ok", body)) => Ok(body.to_string()),
        Some((first, body)) if first.starts_with("ok") => Ok(format!("{first}\n{body}")),
        _ => Err(io::Error::other(
            reply
                .trim()
                .strip_prefix("error: ")
                .unwrap_or(reply.trim())
                .to_string(),
        )),
    }
}

fn cmd_down(paths: &Paths) -> io::Result<ExitCode> {
    match request(paths, "down") {
        Ok(msg) => {
            // Wait for the process to exit.
            let deadline = Instant::now() + Duration::from_secs(10);
            while paths.running_pid().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            print!("{msg}");
            println!("braid-netbed: `{}` is down", paths.name);
        }
        Err(_) => {
            // Nobody answers: clean up whatever a dead `up` left.
            let existed = namespace_exists(&paths.phone_ns) || namespace_exists(&paths.server_ns);
            remove_leftovers(paths)?;
            if existed {
                println!(
                    "braid-netbed: `{}` was not running; removed its namespaces",
                    paths.name
                );
            } else {
                println!("braid-netbed: `{}` is not up", paths.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_exec(paths: &Paths, args: &[String]) -> io::Result<ExitCode> {
    let (side, cmd) = match args.split_first() {
        Some((side, cmd)) if !cmd.is_empty() => (side.as_str(), cmd),
        _ => return Err(invalid("exec phone|server CMD...")),
    };
    let ns = match side {
        "phone" => &paths.phone_ns,
        "server" => &paths.server_ns,
        _ => return Err(invalid("exec phone|server CMD...")),
    };
    if !namespace_exists(ns) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("namespace {ns} does not exist: is `{}` up?", paths.name),
        ));
    }
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .status()?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}
