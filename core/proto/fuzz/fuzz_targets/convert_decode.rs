//! The RFC 8803 Convert decoder (`braid::convert`) against arbitrary bytes: no panic, and
//! what decodes re-encodes to the same meaning.
#![no_main]

use braid::convert::{self, FirstBytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(len)) = data
        .first_chunk::<{ convert::HEADER_LEN }>()
        .map(convert::message_len)
    {
        assert!((convert::HEADER_LEN..=convert::MAX_LEN).contains(&len));
    }
    if let Ok(m) = convert::decode(data) {
        assert_eq!(data.len() % 4, 0, "a decoded message is whole words");
        if let Some(t) = m.connect {
            let again = convert::decode(&convert::encode_connect(t)).expect("Connect re-decodes");
            assert_eq!(again.connect, Some(t));
        }
        if let Some(h) = &m.host {
            let bytes = convert::encode_connect_host(h, None).expect("a decoded host re-encodes");
            assert_eq!(convert::decode(&bytes).expect("Host re-decodes").host.as_ref(), Some(h));
        }
        if let Some((code, _)) = m.error {
            let again = convert::decode(&convert::encode_error(code)).expect("Error re-decodes");
            assert_eq!(again.error.map(|e| e.0), Some(code));
        }
    }
    match convert::first_bytes(data) {
        Ok(FirstBytes::Need(n)) => assert!(n > 0 && data.len() + n <= convert::MAX_LEN),
        Ok(FirstBytes::Done(m)) => {
            let len = convert::message_len(data.first_chunk().unwrap()).unwrap();
            assert_eq!(convert::decode(&data[..len]), Ok(m));
        }
        Err(_) => {}
    }
});
