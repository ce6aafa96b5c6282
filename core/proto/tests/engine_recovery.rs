//! Regression (simulator) for what the kernel interop test exposed: after a burst
//! loss whose retransmissions are lost too, the retransmission timeout fires, and recovery then
//! must slow-start, not crawl at one segment per (inflated) RTO.
//!
//! Seen against the kernel (test `interop_link_down`): a Braid upload on
//! cellular overflows the 150 KB queue; fast recovery loses retransmissions; after the RTO the
//! sender sends one segment per RTO for tens of seconds while the kernel acknowledges each at
//! once. The two causes, both fixed:
//! - `Subflow::on_rto` set `recovery_until = snd_nxt`, and `may_grow()` refuses to grow the
//!   window while in recovery: cwnd stays at one segment until everything sent before the
//!   timeout is acknowledged (RFC 5681 §3.1 / RFC 6298 §5: slow start after a timeout).
//! - `process_ack` took an RTT sample from every never-retransmitted segment a cumulative ACK
//!   covers, also when the same ACK covers retransmitted data: segments that sat out of order
//!   at the receiver for seconds give samples of seconds, srtt and the RTO balloon (Karn,
//!   RFC 6298 §3; Linux drops the sequence sample then and uses TSecr).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use braid_proto::harness::{Transfer, WIFI, cell_link, sa};
use braid_proto::wire::parse_udp_payload;

const BYTES: u64 = 12_000_000;

#[test]
fn recovery_after_a_timeout_slow_starts() {
    let mut t = Transfer::single_path(11, cell_link(), cell_link(), BYTES, 0);
    // At 1.5 s: drop the next 80 new data segments and the first retransmission of each.
    // From 1.6 s to 2.4 s: drop everything the client sends (the fast retransmissions too),
    // so that the retransmission timer fires with the receiver holding data out of order.
    #[derive(Default)]
    struct Drops {
        seen: HashMap<u32, u32>,
        burst: HashSet<u32>,
        burst_left: u32,
        blackout: bool,
        dropped_after: u32,
    }
    let state: Rc<RefCell<Drops>> = Rc::default();
    let st = state.clone();
    t.sim.set_middlebox(Box::new(move |src, dst, buf| {
        if *src != sa(WIFI) {
            return true;
        }
        let Ok((r, off)) = parse_udp_payload(buf, src.port(), dst.port()) else {
            return true;
        };
        if buf.len() == off {
            return true;
        }
        let d = &mut *st.borrow_mut();
        if d.blackout {
            return false;
        }
        let count = d.seen.entry(r.seq.0).or_insert(0);
        *count += 1;
        if *count == 1 && d.burst_left > 0 {
            d.burst_left -= 1;
            d.burst.insert(r.seq.0);
            return false;
        }
        let drop = *count == 2 && d.burst.contains(&r.seq.0);
        d.dropped_after += u32::from(drop);
        !drop
    }));
    let st = state.clone();
    t.sim.at(Duration::from_millis(1500), move |_| {
        st.borrow_mut().burst_left = 80
    });
    let st = state.clone();
    t.sim.at(Duration::from_millis(1600), move |_| {
        st.borrow_mut().blackout = true
    });
    let st = state.clone();
    t.sim.at(Duration::from_millis(2400), move |_| {
        st.borrow_mut().blackout = false
    });
    let trace = t.sim.record_trace();
    let r = t.run(Duration::from_secs(60));
    // Data segments the client sent per second from 2 s on: a healthy sender is back to
    // ~1700/s (20 Mbit/s) within a second of the blackout.
    let mut per_second = [0u32; 12];
    for e in trace.borrow().iter() {
        if let braid_proto::sim::TraceEvent::Sent { at, src, size, .. } = e {
            let s = at.as_secs() as usize;
            if *src == sa(WIFI) && *size > 200 && (2..14).contains(&s) {
                per_second[s - 2] += 1;
            }
        }
    }
    println!("client data segments per second from t=2s: {per_second:?}");
    let server = t.server_app().unwrap();
    let stall = server.longest_stall(t.sim.start(), t.sim.now());
    let stats = t
        .sim
        .node(t.client)
        .ep
        .connection(t.handle)
        .map(|c| c.stats());
    println!(
        "burst retransmissions dropped after the blackout: {}",
        state.borrow().dropped_after
    );
    println!(
        "finished {} in {:?}, longest stall {stall:?}, paths {:?}",
        r.done,
        r.elapsed,
        stats.map(|s| s
            .paths
            .iter()
            .map(|p| (p.srtt, p.cwnd, p.rto_events, p.retransmissions))
            .collect::<Vec<_>>())
    );
    r.assert_intact("burst loss with lost retransmissions");
    // 12 MB at 20 Mbit/s is 4.8 s; a timeout and a slow start cost about a second more.
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    assert!(stall < Duration::from_secs(2), "stalled {stall:?}");
}
