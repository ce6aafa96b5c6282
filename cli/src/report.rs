//! Connection events and path statistics in words.

use crate::progress::bytes;
use braid::{ConnectionEvent, ConnectionStats, PathId, PathStats, SwitchReason};
use std::collections::HashMap;

/// Names of paths for messages: path id → "wlan0 (wifi)".
#[derive(Clone, Debug, Default)]
pub struct PathNames(pub HashMap<PathId, String>);

impl PathNames {
    pub fn name(&self, p: PathId) -> String {
        self.0
            .get(&p)
            .cloned()
            .unwrap_or_else(|| format!("path {p}"))
    }
}

pub fn reason(r: SwitchReason) -> &'static str {
    match r {
        SwitchReason::InterfaceLost => "the OS reported the interface lost",
        SwitchReason::RetransmissionTimeouts => "retransmission timeouts",
        SwitchReason::Unresponsive => "the path stopped answering",
        SwitchReason::HighRtt => "round-trip time too high",
        SwitchReason::Lossy => "weak and lossy",
        SwitchReason::Failback => "preferred path healthy again",
        SwitchReason::SubflowDied => "its subflow died",
        SwitchReason::PolicyChange => "policy change",
        SwitchReason::CostControl => "cellular budget or allow_cellular",
        // The engine may add reasons (the enum is non_exhaustive).
        _ => "another reason",
    }
}

pub fn event(e: &ConnectionEvent, names: &PathNames) -> String {
    match e {
        ConnectionEvent::Connected => "connected".into(),
        ConnectionEvent::FellBackToTcp => {
            "the peer does not speak MPTCP: plain TCP on one path".into()
        }
        ConnectionEvent::PathUp { path, .. } => format!("path up: {}", names.name(*path)),
        ConnectionEvent::PathDown { path, .. } => format!("path down: {}", names.name(*path)),
        ConnectionEvent::PathSwitched {
            from,
            to,
            reason: r,
        } => format!(
            "switched {}-> {} ({})",
            from.map(|f| format!("{} ", names.name(f)))
                .unwrap_or_default(),
            names.name(*to),
            reason(*r)
        ),
        ConnectionEvent::BackupChanged { path, backup } => format!(
            "{} is {}",
            names.name(*path),
            if *backup {
                "a backup now"
            } else {
                "in use now"
            }
        ),
        ConnectionEvent::AddressAnnounced { addr } => format!("the peer announced {addr}"),
        ConnectionEvent::BudgetExhausted { bytes: b } => {
            format!("cellular budget used up ({})", bytes(*b))
        }
        ConnectionEvent::GsoDisabled {
            path,
            remote,
            reason,
        } => format!(
            "GSO off towards {remote}{}: {reason}",
            path.map(|p| format!(" on {}", names.name(p)))
                .unwrap_or_default()
        ),
        ConnectionEvent::Closed(e) => format!("closed: {e}"),
        // Events a newer runtime adds: shown as they debug-print until named here.
        other => format!("{other:?}"),
    }
}

pub fn path_line(p: &PathStats, names: &PathNames) -> String {
    let name = p
        .path
        .map(|id| names.name(id))
        .or_else(|| p.kind.map(|k| k.to_string()))
        .unwrap_or_else(|| "?".into());
    let addrs = match (p.local, p.remote) {
        (Some(l), Some(r)) => format!(" {l} -> {r}"),
        _ => String::new(),
    };
    format!(
        "{name}{addrs} {}{}: sent {}, received {}, retransmitted {} ({} RTOs), srtt {:.1} ms, cwnd {}",
        p.state,
        if p.backup { " backup" } else { "" },
        bytes(p.bytes_sent),
        bytes(p.bytes_received),
        bytes(p.bytes_retransmitted),
        p.rto_events,
        p.srtt.as_secs_f64() * 1e3,
        bytes(p.cwnd),
    )
}

pub fn conn_line(s: &ConnectionStats) -> String {
    format!(
        "{}: sent {} (acked {}), received {}, reinjected {}, subflows opened {} closed {}",
        if s.mptcp { "MPTCP" } else { "plain TCP" },
        bytes(s.bytes_sent),
        bytes(s.bytes_acked),
        bytes(s.bytes_received),
        bytes(s.bytes_reinjected),
        s.subflows_opened,
        s.subflows_closed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_well() {
        let mut n = PathNames::default();
        n.0.insert(PathId::new(3), "wlan0 (wifi)".into());
        n.0.insert(PathId::new(5), "rmnet0 (cellular)".into());
        let e = ConnectionEvent::PathSwitched {
            from: Some(PathId::new(3)),
            to: PathId::new(5),
            reason: SwitchReason::InterfaceLost,
        };
        assert_eq!(
            event(&e, &n),
            "switched wlan0 (wifi) -> rmnet0 (cellular) (the OS reported the interface lost)"
        );
        let e = ConnectionEvent::PathDown {
            path: PathId::new(9),
            kind: braid::InterfaceKind::Other,
        };
        assert_eq!(event(&e, &n), "path down: path 9");
    }
}
