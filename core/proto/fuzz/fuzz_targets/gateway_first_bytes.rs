//! The gateway's Convert phase, sans IO: a client engine connects to a listening engine and
//! writes arbitrary first bytes in arbitrary pieces; the server side reads them the way the
//! gateway does (`braid::convert::first_bytes`, the gateway reader's logic: exactly the bytes
//! it asks for, never past the message) and decides. No panic, never a read past what was asked, and a decision as soon
//! as the bytes for one are in.
#![no_main]

#[path = "pair.rs"]
mod pair;

use braid::convert::{self, FirstBytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let mut p = pair::Pair::new(1, [0, 0]);
    for _ in 0..200 {
        p.step();
        if p.sh.is_some() && p.client_paths_up > 0 {
            break;
        }
    }
    let Some(sh) = p.sh else { return };
    // The client writes in pieces of 1..=16 bytes (sizes from the first input byte).
    let mut pieces = bytes.chunks(usize::from(split % 16) + 1);
    let mut msg = Vec::new();
    let mut idle = 0;
    for _ in 0..2000 {
        if let (Some(piece), Some(c)) = (pieces.next(), p.client.connection_mut(p.h)) {
            let _ = c.write(piece);
        }
        p.step();
        let Some(c) = p.server.connection_mut(sh) else {
            return;
        };
        loop {
            match convert::first_bytes(&msg) {
                Ok(FirstBytes::Need(n)) => {
                    let at = msg.len();
                    msg.resize(at + n, 0);
                    let got = c.read(&mut msg[at..]).unwrap_or(0);
                    msg.truncate(at + got);
                    assert!(msg.len() <= convert::MAX_LEN);
                    if got == 0 {
                        break;
                    }
                }
                Ok(FirstBytes::Done(m)) => {
                    // The decision used exactly the message the header announced, and
                    // the bytes came through the engine unchanged.
                    assert_eq!(convert::decode(&msg).ok(), Some(m));
                    assert!(bytes.starts_with(&msg));
                    return;
                }
                Err(_) => {
                    assert!(bytes.starts_with(&msg));
                    return;
                }
            }
        }
        // Everything written: a few more rounds for it to arrive, then stop.
        if pieces.len() == 0 {
            idle += 1;
            if idle > 50 || p.closed {
                return;
            }
        }
    }
});
