//! The local proxy's handshake parsers (`braid::proxy::socks5`, `braid::proxy::http_connect`)
//! against arbitrary bytes: no panic, a parse that completes never claims more bytes than it
//! got, and the same bytes with more appended parse to the same thing (no early decision a
//! later byte would change).
#![no_main]

use braid::proxy::{Parsed, http_connect, socks5};
use libfuzzer_sys::fuzz_target;

fn check<T: PartialEq + std::fmt::Debug, E: PartialEq + std::fmt::Debug>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, E>,
) {
    let whole = parse(data);
    if let Ok(Parsed::Done(_, used)) = &whole {
        assert!(*used <= data.len());
        assert_eq!(parse(&data[..*used]), whole, "exactly the bytes it used");
    }
    // Every prefix either needs more or decides as the whole does.
    for cut in 0..data.len().min(64) {
        match parse(&data[..cut]) {
            Ok(Parsed::More) => {}
            early => assert_eq!(early, whole, "decided at {cut} bytes"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, socks5::parse_greeting);
    check(data, socks5::parse_user_pass);
    check(data, socks5::parse_request);
    if let Ok(Parsed::Done(r, _)) = socks5::parse_request(data) {
        let t = r.target_string();
        assert!(t.rsplit_once(':').is_some(), "{t}");
    }
    check(data, |b| http_connect::parse_head(b, 1024));
    if let Ok(Parsed::Done(h, _)) = http_connect::parse_head(data, 1024) {
        assert!(h.target.rsplit_once(':').is_some());
    }
});
