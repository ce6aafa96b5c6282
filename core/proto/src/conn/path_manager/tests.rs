//! The manager's event → action logic, without a connection.

use super::*;

const WIFI: PathId = PathId::new(1);
const CELL: PathId = PathId::new(2);

fn facts() -> ConnFacts {
    ConnFacts {
        steer: true,
        open: true,
        max_subflows: 8,
        initial_remote: "203.0.113.1:443".parse().unwrap(),
        join_announced: true,
    }
}

fn spec(id: PathId) -> PathSpec {
    let (kind, local) = match id {
        WIFI => (InterfaceKind::Wifi, "192.0.2.10:0"),
        _ => (InterfaceKind::Cellular, "198.51.100.10:0"),
    };
    PathSpec::new(id, kind, local.parse().unwrap())
}

/// An established, healthy subflow on `path` at `index`.
fn subflow(index: usize, path: PathId, t0: Instant) -> SubflowView {
    SubflowView {
        index,
        path: Some(path),
        kind: spec(path).kind,
        remote: facts().initial_remote,
        usable: true,
        closed: false,
        synchronized: true,
        backup_local: false,
        backup_remote: false,
        srtt: Duration::from_millis(if path == WIFI { 20 } else { 60 }),
        rtt_sampled: true,
        rto: Duration::from_millis(200),
        rto_count: 0,
        rto_events: 0,
        outstanding: true,
        all_acked: false,
        last_loss: None,
        unresponsive_at: None,
        last_active: t0,
        bytes: 0,
    }
}

fn drain(pm: &mut PathManager) -> Vec<PmAction> {
    std::iter::from_fn(|| pm.next_action()).collect()
}

fn switches(actions: &[PmAction]) -> Vec<(Option<PathId>, PathId, SwitchReason)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            PmAction::Switch { from, to, reason } => Some((from, to, reason)),
            _ => None,
        })
        .collect()
}

/// A handover manager with WiFi and cellular up, one subflow each, WiFi active.
fn on_wifi(policy: Policy, t0: Instant) -> (PathManager, Vec<SubflowView>) {
    let mut pm = PathManager::new(&policy);
    let mut view = vec![subflow(0, WIFI, t0), subflow(1, CELL, t0)];
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(CELL)), &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(pm.active(), Some(WIFI));
    assert_eq!(
        switches(&actions),
        vec![],
        "choosing the first path is no switch"
    );
    assert_eq!(
        actions,
        vec![PmAction::SetBackup {
            index: 1,
            backup: true
        }]
    );
    (pm, view)
}

/// Then WiFi is lost: one switch to cellular; WiFi comes back with a new subflow.
fn on_cellular(policy: Policy, t0: Instant) -> (PathManager, Vec<SubflowView>) {
    let (mut pm, mut view) = on_wifi(policy, t0);
    view[0].usable = false;
    view[0].closed = true;
    pm.handle(t0, PmEvent::InterfaceLost(WIFI), &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(
        actions,
        vec![
            // The dead subflow's flag too (the connection sends no MP_PRIO on it).
            PmAction::SetBackup {
                index: 0,
                backup: true
            },
            PmAction::SetBackup {
                index: 1,
                backup: false
            },
            PmAction::Reinject { onto: CELL },
            PmAction::Switch {
                from: Some(WIFI),
                to: CELL,
                reason: SwitchReason::InterfaceLost
            },
        ]
    );
    view[0] = subflow(0, WIFI, t0);
    view[0].backup_local = true;
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    assert_eq!(switches(&drain(&mut pm)), vec![]);
    assert_eq!(pm.active(), Some(CELL));
    (pm, view)
}

fn no_failback() -> Policy {
    let mut p = Policy::new(ServiceType::Handover);
    p.failback_after = Duration::from_secs(600);
    p
}

#[test]
fn disallowing_cellular_while_on_it_switches_once_for_the_policy() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_cellular(no_failback(), t0);
    let mut policy = no_failback();
    policy.allow_cellular = false;
    pm.handle(t0, PmEvent::PolicyChanged(policy), &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(
        switches(&actions),
        vec![(Some(CELL), WIFI, SwitchReason::PolicyChange)]
    );
    assert!(actions.contains(&PmAction::Reinject { onto: WIFI }));
    assert!(!pm.carries_data(InterfaceKind::Cellular, Some(CELL)));
    // Nothing more to decide: no second report.
    pm.handle(t0, PmEvent::Timeout, &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    assert_eq!(switches(&drain(&mut pm)), vec![]);
}

#[test]
fn a_policy_change_that_keeps_the_path_is_no_switch() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
    pm.handle(
        t0,
        PmEvent::PolicyChanged(Policy::new(ServiceType::Interactive)),
        &mut view,
    );
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(switches(&actions), vec![]);
    // Interactive keeps the other path a regular standby.
    assert_eq!(
        actions,
        vec![PmAction::SetBackup {
            index: 1,
            backup: false
        }]
    );
    assert_eq!(pm.active(), Some(WIFI));
}

#[test]
fn a_policy_change_to_a_path_without_a_subflow_stays_where_traffic_is() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_cellular(no_failback(), t0);
    view[0].usable = false;
    pm.handle(
        t0,
        PmEvent::PolicyChanged(Policy::new(ServiceType::Interactive)),
        &mut view,
    );
    pm.decide(t0, &facts(), &mut view, false);
    assert_eq!(switches(&drain(&mut pm)), vec![]);
    assert_eq!(pm.active(), Some(CELL));
}

#[test]
fn the_budget_running_out_on_cellular_is_one_cost_control_switch() {
    let t0 = Instant::now();
    let mut policy = no_failback();
    policy.cellular_budget = Some(1_000);
    let (mut pm, mut view) = on_cellular(policy, t0);
    view[1].bytes = 999;
    pm.handle(t0, PmEvent::Segment, &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    assert_eq!(drain(&mut pm), vec![]);
    view[1].bytes = 1_000;
    pm.handle(t0, PmEvent::Segment, &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(actions[0], PmAction::BudgetExhausted { bytes: 1_000 });
    assert_eq!(
        switches(&actions),
        vec![(Some(CELL), WIFI, SwitchReason::CostControl)]
    );
    view[1].bytes = 5_000;
    pm.handle(t0, PmEvent::Timeout, &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    assert_eq!(drain(&mut pm), vec![], "reported once");
}

#[test]
fn timeouts_on_the_active_path_switch_once_and_abandon_it() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
    view[0].rto_count = 2;
    pm.handle(t0, PmEvent::Segment, &mut view);
    pm.decide(t0, &facts(), &mut view, false);
    let actions = drain(&mut pm);
    assert_eq!(
        switches(&actions),
        vec![(Some(WIFI), CELL, SwitchReason::RetransmissionTimeouts)]
    );
    assert!(actions.contains(&PmAction::CloseSubflow {
        index: 0,
        abort: true
    }));
    assert_eq!(
        pm.signals
            .next(t0, 1, 2)
            .map(|o| matches!(o, crate::wire::MptcpOption::RemoveAddr(_))),
        Some(true),
        "REMOVE_ADDR for the path left"
    );
}

#[test]
fn a_segment_that_changes_nothing_the_manager_reads_runs_nothing() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
    view[0].bytes += 1_460;
    view[0].last_active = t0 + Duration::from_millis(5);
    pm.handle(t0, PmEvent::Segment, &mut view);
    assert!(!pm.steer_due(), "only counters and times moved");
    view[0].srtt += Duration::from_millis(1);
    pm.handle(t0, PmEvent::Segment, &mut view);
    assert!(!pm.steer_due(), "both RTTs far below the thresholds");
    view[0].srtt = Duration::from_millis(350);
    pm.handle(t0, PmEvent::Segment, &mut view);
    assert!(pm.steer_due(), "WiFi's RTT reached half the threshold");
    pm.decide(t0, &facts(), &mut view, false);
    view[1].srtt += Duration::from_millis(1);
    pm.handle(t0, PmEvent::Segment, &mut view);
    assert!(
        pm.steer_due(),
        "near the threshold, which path is faster matters"
    );
    pm.decide(t0, &facts(), &mut view, false);
    view[0].rto_count = 1;
    pm.handle(t0, PmEvent::Segment, &mut view);
    assert!(pm.steer_due(), "a timeout is worth a decision");
}

#[test]
fn failback_is_due_without_new_segments_once_the_preferred_path_stayed_healthy() {
    let t0 = Instant::now();
    let mut policy = Policy::new(ServiceType::Handover);
    policy.failback_after = Duration::from_secs(2);
    let (mut pm, mut view) = on_cellular(policy, t0);
    let t1 = t0 + Duration::from_secs(1);
    pm.handle(t1, PmEvent::Segment, &mut view);
    assert!(!pm.steer_due(), "healthy for 1 s of 2");
    let t2 = t0 + Duration::from_secs(2);
    pm.handle(t2, PmEvent::Segment, &mut view);
    pm.decide(t2, &facts(), &mut view, false);
    assert_eq!(
        switches(&drain(&mut pm)),
        vec![(Some(CELL), WIFI, SwitchReason::Failback)]
    );
}

#[test]
fn paths_without_a_subflow_get_one_and_a_closed_one_waits_for_its_backoff() {
    let t0 = Instant::now();
    let mut pm = PathManager::new(&Policy::new(ServiceType::Handover));
    let mut view = Vec::new();
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(CELL)), &mut view);
    pm.decide(t0, &facts(), &mut view, true);
    let opens: Vec<(PathId, bool)> = drain(&mut pm)
        .into_iter()
        .filter_map(|a| match a {
            PmAction::OpenSubflow { path, backup, .. } => Some((path, backup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        opens,
        vec![(WIFI, false), (CELL, true)],
        "cellular as a backup"
    );
    // Both exist; then cellular's dies and is re-created only after the back-off.
    let mut view = vec![subflow(0, WIFI, t0), subflow(1, CELL, t0)];
    view[1].closed = true;
    view[1].usable = false;
    pm.on_subflow_closed(t0, Some(CELL), Some(CloseReason::Reset));
    pm.decide(t0, &facts(), &mut view, true);
    assert!(
        drain(&mut pm)
            .iter()
            .all(|a| !matches!(a, PmAction::OpenSubflow { .. }))
    );
    let retry = pm.next_deadline().expect("a re-creation deadline");
    assert!(retry > t0);
    pm.handle_timeout(retry);
    pm.decide(retry, &facts(), &mut view, true);
    assert!(
        drain(&mut pm)
            .iter()
            .any(|a| matches!(a, PmAction::OpenSubflow { path: CELL, .. }))
    );
    assert_eq!(pm.next_deadline(), None);
}

#[test]
fn an_announced_address_is_joined_from_every_path_and_forgotten_when_withdrawn() {
    let t0 = Instant::now();
    let (mut pm, mut view) = on_wifi(Policy::new(ServiceType::Handover), t0);
    let announced: SocketAddr = "203.0.113.2:443".parse().unwrap();
    let event = PmEvent::AddAddr {
        id: 5,
        addr: announced,
    };
    pm.handle(t0, event, &mut view);
    pm.decide(t0, &facts(), &mut view, true);
    let joins: Vec<(PathId, SocketAddr)> = drain(&mut pm)
        .into_iter()
        .filter_map(|a| match a {
            PmAction::OpenSubflow { path, remote, .. } => Some((path, remote)),
            _ => None,
        })
        .collect();
    assert_eq!(joins, vec![(WIFI, announced), (CELL, announced)]);
    assert!(pm.remote_known(5));
    pm.handle(t0, PmEvent::RemoveAddr(vec![5]), &mut view);
    assert!(!pm.remote_known(5));
    pm.decide(t0, &facts(), &mut view, true);
    assert_eq!(drain(&mut pm), vec![], "nothing left to join");
}

#[test]
fn under_c_the_initial_address_takes_no_join_and_announced_ones_do() {
    let t0 = Instant::now();
    let mut pm = PathManager::new(&Policy::new(ServiceType::Aggregate));
    pm.initial_join_denied = true;
    // Only the initial subflow, on WiFi; cellular came up later.
    let mut view = vec![subflow(0, WIFI, t0)];
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(WIFI)), &mut view);
    pm.handle(t0, PmEvent::InterfaceAvailable(spec(CELL)), &mut view);
    pm.decide(t0, &facts(), &mut view, true);
    let opens = |pm: &mut PathManager| -> Vec<(PathId, SocketAddr)> {
        drain(pm)
            .into_iter()
            .filter_map(|a| match a {
                PmAction::OpenSubflow { path, remote, .. } => Some((path, remote)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(opens(&mut pm), vec![], "no join to the initial address");
    let announced: SocketAddr = "203.0.113.2:7001".parse().unwrap();
    let event = PmEvent::AddAddr {
        id: 1,
        addr: announced,
    };
    pm.handle(t0, event, &mut view);
    pm.decide(t0, &facts(), &mut view, true);
    assert_eq!(opens(&mut pm), vec![(WIFI, announced), (CELL, announced)]);
}
