//! Prometheus text exposition (format 0.0.4) and the tiny HTTP/1.1 responder that serves it.
//!
//! No metrics crate and no HTTP server crate: the format is a few lines of text per metric,
//! and a scraper sends one `GET` per connection. See docs/ARCHITECTURE.md, "Operating a
//! gateway".

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bounds (seconds) of the latency histograms' buckets: 1 ms to 10 s, roughly ×2.5.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the fixed [`LATENCY_BUCKETS`], updated without a lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the exposition sums them).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Observations above the last bucket.
    over: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    /// Adds another histogram's observations into this one (to sum workers).
    pub fn merge_from(&self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.over
            .fetch_add(other.over.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sum_micros
            .fetch_add(other.sum_micros.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Builds a text exposition, one metric family at a time.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. `kind` is `counter`, `gauge` or
    /// `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` are (name, value) pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A whole histogram family (buckets cumulative, then `_sum` in seconds and `_count`).
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> &mut Self {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (le, b) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
            cumulative += b.load(Ordering::Relaxed);
            self.sample(&bucket, &[("le", &le.to_string())], cumulative as f64);
        }
        cumulative += h.over.load(Ordering::Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], cumulative as f64);
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], cumulative as f64)
    }

    /// The text built so far.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Longest request head read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a scraper has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes answered at once; more wait in the listener's backlog.
const MAX_SCRAPES: usize = 8;

/// Answers `GET /metrics` (and `GET /`) on `listener` with `render()`'s text until
/// `stop` completes. One request per connection (`Connection: close`); anything else gets
/// 404, 405 or 400, and a scraper that sends nothing is dropped after a few seconds.
pub async fn serve<F, S>(listener: TcpListener, render: Arc<F>, stop: S)
where
    F: Fn() -> String + Send + Sync + 'static,
    S: Future<Output = ()>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    tokio::pin!(stop);
    loop {
        let (sock, peer) = tokio::select! {
            () = &mut stop => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    log::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            log::debug!("metrics: {peer}: too many scrapes at once, dropped");
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(sock, &*render).await {
                log::debug!("metrics: {peer}: {e}");
            }
            drop(permit);
        });
    }
}

/// Reads one request head and writes one response.
async fn answer<F: Fn() -> String>(mut sock: TcpStream, render: &F) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut sock)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    let (status, body, head_only) = match head {
        None => ("431 Request Header Fields Too Large", String::new(), false),
        Some(h) => route(&h, render),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        resp.push_str(&body);
    }
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

/// The status, body and whether only the head is sent (HEAD), for a request head.
fn route<F: Fn() -> String>(head: &str, render: &F) -> (&'static str, String, bool) {
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target, version) = (words.next(), words.next(), words.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return ("400 Bad Request", "bad request line\n".into(), false);
    };
    if !version.starts_with("HTTP/1.") {
        return ("400 Bad Request", "HTTP/1.x only\n".into(), false);
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" && path != "/" {
        return ("404 Not Found", "try /metrics\n".into(), false);
    }
    match method {
        "GET" => ("200 OK", render(), false),
        "HEAD" => ("200 OK", render(), true),
        _ => ("405 Method Not Allowed", "GET only\n".into(), false),
    }
}

/// The request head up to the blank line; `None` when it is longer than
/// [`MAX_REQUEST_HEAD`].
async fn read_head(sock: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // le 0.001
        h.observe(Duration::from_millis(30)); // le 0.05
        h.observe(Duration::from_secs(60)); // above every bucket
        let mut e = Exposition::default();
        e.histogram("x_seconds", "test", &h);
        let t = e.finish();
        assert!(t.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{t}");
        assert!(t.contains("x_seconds_bucket{le=\"0.025\"} 1\n"), "{t}");
        assert!(t.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{t}");
        assert!(t.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{t}");
        assert!(t.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{t}");
        assert!(t.contains("x_seconds_count 3\n"), "{t}");
        assert!(t.contains("x_seconds_sum 60.0305\n"), "{t}");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn labels_are_escaped() {
        let mut e = Exposition::default();
        e.family("m", "gauge", "a\nb")
            .sample("m", &[("k", "q\"u\\o")], 1.0);
        let t = e.finish();
        assert!(t.contains("# HELP m a\\nb\n"), "{t}");
        assert!(t.contains("m{k=\"q\\\"u\\\\o\"} 1\n"), "{t}");
    }

    #[test]
    fn routes() {
        let r = || "body\n".to_string();
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x", &r).0, "200 OK");
        assert_eq!(route("GET /metrics HTTP/1.1", &r).1, "body\n");
        assert!(route("HEAD / HTTP/1.0", &r).2);
        assert_eq!(route("GET /other HTTP/1.1", &r).0, "404 Not Found");
        assert_eq!(
            route("POST /metrics HTTP/1.1", &r).0,
            "405 Method Not Allowed"
        );
        assert_eq!(route("GET", &r).0, "400 Bad Request");
        assert_eq!(route("GET / SPDY/3", &r).0, "400 Bad Request");
    }
}
