//! The gateway's metrics in Prometheus text format: its own counters ([`GatewayStats`]),
//! summed over its workers, and each worker's endpoint census (see docs/ARCHITECTURE.md,
//! "Operating a gateway").

use super::GatewayStats;
use crate::convert::ErrorCode;
use crate::metrics::{Exposition, Histogram};
use crate::server::{Census, ServerProbe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The RFC 8803 error codes refusals are counted by, with their metric labels.
const CODES: [(ErrorCode, &str); 10] = [
    (ErrorCode::UnsupportedVersion, "unsupported_version"),
    (ErrorCode::MalformedMessage, "malformed_message"),
    (ErrorCode::UnsupportedMessage, "unsupported_message"),
    (ErrorCode::MissingCookie, "missing_cookie"),
    (ErrorCode::NotAuthorized, "not_authorized"),
    (ErrorCode::UnsupportedTcpOption, "unsupported_tcp_option"),
    (ErrorCode::ResourceExceeded, "resource_exceeded"),
    (ErrorCode::NetworkFailure, "network_failure"),
    (ErrorCode::ConnectionReset, "connection_reset"),
    (ErrorCode::DestinationUnreachable, "destination_unreachable"),
];

/// Refusals answered with a Convert Error TLV, by its code.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    by_code: [AtomicU64; CODES.len()],
    other: AtomicU64,
}

impl RefusalCounts {
    /// Counts one refusal answered with `code`.
    pub fn note(&self, code: ErrorCode) {
        match CODES.iter().position(|(c, _)| *c == code) {
            Some(i) => self.by_code[i].fetch_add(1, Ordering::Relaxed),
            None => self.other.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Refusals answered with `code` so far.
    pub fn get(&self, code: ErrorCode) -> u64 {
        match CODES.iter().position(|(c, _)| *c == code) {
            Some(i) => self.by_code[i].load(Ordering::Relaxed),
            None => self.other.load(Ordering::Relaxed),
        }
    }
}

/// One worker as the metrics see it: its gateway counters and its endpoint.
#[derive(Clone)]
pub struct WorkerView {
    /// The worker's gateway counters.
    pub stats: Arc<GatewayStats>,
    /// The worker's endpoint.
    pub probe: ServerProbe,
}

/// The whole exposition for a gateway made of `workers`.
pub fn render(workers: &[WorkerView]) -> String {
    let censuses: Vec<Census> = workers
        .iter()
        .map(|w| w.probe.census().unwrap_or_default())
        .collect();
    let sum = |f: &dyn Fn(&GatewayStats) -> &AtomicU64| -> f64 {
        workers
            .iter()
            .map(|w| f(&w.stats).load(Ordering::Relaxed))
            .sum::<u64>() as f64
    };
    let census_sum =
        |f: &dyn Fn(&Census) -> u64| -> f64 { censuses.iter().map(f).sum::<u64>() as f64 };
    let mut e = Exposition::default();

    e.family(
        "braid_gateway_connections",
        "gauge",
        "Connections held now, by state: the endpoint's handshake states, and the gateway's \
         Convert phase and relaying.",
    );
    let by_state: [(&str, f64); 5] = [
        ("connecting", census_sum(&|c| c.connecting as u64)),
        ("established", census_sum(&|c| c.established as u64)),
        ("closing", census_sum(&|c| c.closing as u64)),
        ("convert", sum(&|s| &s.convert_phase)),
        ("relaying", sum(&|s| &s.relaying)),
    ];
    for (state, v) in by_state {
        e.sample("braid_gateway_connections", &[("state", state)], v);
    }
    e.family(
        "braid_gateway_subflows",
        "gauge",
        "Live subflows over all connections.",
    )
    .sample(
        "braid_gateway_subflows",
        &[],
        census_sum(&|c| c.subflows as u64),
    );

    let counters: [(&str, &str, f64); 4] = [
        (
            "braid_gateway_accepted_total",
            "Connections the gateway took from its endpoints.",
            sum(&|s| &s.accepted),
        ),
        (
            "braid_gateway_relayed_total",
            "Connections that reached the relaying phase.",
            sum(&|s| &s.relayed),
        ),
        (
            "braid_gateway_refused_total",
            "Connections refused or dropped before relaying, for any reason.",
            sum(&|s| &s.refused),
        ),
        (
            "braid_gateway_idle_timeouts_total",
            "Relayed connections reset because the client went silent.",
            sum(&|s| &s.idle_timeouts),
        ),
    ];
    for (name, help, v) in counters {
        e.family(name, "counter", help).sample(name, &[], v);
    }
    e.family(
        "braid_gateway_bytes_total",
        "counter",
        "Bytes relayed: up is client to destination, down the other way (counted when a \
         connection ends).",
    );
    e.sample(
        "braid_gateway_bytes_total",
        &[("direction", "up")],
        sum(&|s| &s.bytes_up),
    );
    e.sample(
        "braid_gateway_bytes_total",
        &[("direction", "down")],
        sum(&|s| &s.bytes_down),
    );

    e.family(
        "braid_gateway_refusals_total",
        "counter",
        "Refusals answered with a Convert Error, by RFC 8803 error code.",
    );
    for (i, (_, label)) in CODES.iter().enumerate() {
        let v: u64 = workers
            .iter()
            .map(|w| w.stats.refusals.by_code[i].load(Ordering::Relaxed))
            .sum();
        e.sample("braid_gateway_refusals_total", &[("code", label)], v as f64);
    }
    let other: u64 = workers
        .iter()
        .map(|w| w.stats.refusals.other.load(Ordering::Relaxed))
        .sum();
    e.sample(
        "braid_gateway_refusals_total",
        &[("code", "other")],
        other as f64,
    );
    e.family(
        "braid_gateway_refusal_causes_total",
        "counter",
        "Refusals by cause (a cause may also be counted under its error code).",
    );
    let causes: [(&str, f64); 7] = [
        ("token_missing", sum(&|s| &s.token_missing)),
        ("token_rejected", sum(&|s| &s.token_rejected)),
        ("source_limited", sum(&|s| &s.source_limited)),
        ("convert_timeout", sum(&|s| &s.convert_timeouts)),
        ("closed_before_convert", sum(&|s| &s.closed_before_convert)),
        ("draining", sum(&|s| &s.drain_refused)),
        (
            "endpoint_full",
            census_sum(&|c| c.endpoint.refused + c.endpoint.half_open_evicted),
        ),
    ];
    for (cause, v) in causes {
        e.sample("braid_gateway_refusal_causes_total", &[("cause", cause)], v);
    }
    e.family(
        "braid_gateway_joins_refused_total",
        "counter",
        "MP_JOINs refused by the endpoints (unknown token, bad HMAC, no room). Behind a \
         shared address without announcements, most are joins that landed on the wrong \
         instance or worker.",
    )
    .sample(
        "braid_gateway_joins_refused_total",
        &[],
        census_sum(&|c| c.endpoint.joins_rejected),
    );
    e.family(
        "braid_gateway_joins_refused_shared_total",
        "counter",
        "Of the joins refused, those that arrived at an address the gateway does not \
         announce (the shared address). With --announce the C flag tells clients not to \
         join there, so this stays 0; without it, these are joins for connections another \
         instance or worker owns.",
    )
    .sample(
        "braid_gateway_joins_refused_shared_total",
        &[],
        census_sum(&|c| c.endpoint.joins_rejected_unannounced),
    );
    e.family(
        "braid_gateway_drained_total",
        "counter",
        "Connections still open when a drain's timeout ran out, closed by the gateway.",
    )
    .sample(
        "braid_gateway_drained_total",
        &[],
        sum(&|s| &s.drain_closed),
    );
    let draining = workers
        .iter()
        .any(|w| w.stats.draining.load(Ordering::Relaxed));
    e.family(
        "braid_gateway_draining",
        "gauge",
        "1 while the gateway drains (refuses new connections).",
    )
    .sample("braid_gateway_draining", &[], f64::from(u8::from(draining)));

    let merged = |f: &dyn Fn(&GatewayStats) -> &Histogram| {
        let h = Histogram::default();
        for w in workers {
            h.merge_from(f(&w.stats));
        }
        h
    };
    e.histogram(
        "braid_gateway_handshake_seconds",
        "Round trip of the initial subflow's handshake (SYN/ACK to its ACK) of accepted \
         connections.",
        &merged(&|s| &s.handshake_latency),
    );
    e.histogram(
        "braid_gateway_convert_seconds",
        "From accepting a connection to the Convert answer that starts relaying (the \
         client's Convert message and the TCP connect to the destination).",
        &merged(&|s| &s.convert_latency),
    );

    e.family(
        "braid_gateway_worker_connections",
        "gauge",
        "Connections each worker's endpoint holds (any state).",
    );
    for (i, c) in censuses.iter().enumerate() {
        let n = c.connecting + c.established + c.closing;
        e.sample(
            "braid_gateway_worker_connections",
            &[("worker", &i.to_string())],
            n as f64,
        );
    }
    e.family(
        "braid_gateway_worker_datagrams_total",
        "counter",
        "Datagrams (or raw segments) each worker received and sent.",
    );
    for (i, c) in censuses.iter().enumerate() {
        let w = i.to_string();
        e.sample(
            "braid_gateway_worker_datagrams_total",
            &[("worker", &w), ("direction", "in")],
            c.driver.datagrams_in as f64,
        );
        e.sample(
            "braid_gateway_worker_datagrams_total",
            &[("worker", &w), ("direction", "out")],
            c.driver.datagrams_out as f64,
        );
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_by_code() {
        let r = RefusalCounts::default();
        r.note(ErrorCode::NotAuthorized);
        r.note(ErrorCode::NotAuthorized);
        r.note(ErrorCode::Other(200));
        assert_eq!(r.get(ErrorCode::NotAuthorized), 2);
        assert_eq!(r.get(ErrorCode::Other(7)), 1);
        assert_eq!(r.get(ErrorCode::ResourceExceeded), 0);
    }
}
