//! TUN devices: layer-3 interfaces whose packets a process reads and writes through a file.
//!
//! A TUN device lives in the network namespace of the thread that opened `/dev/net/tun`, so
//! the testbed opens each one from a thread inside the phone or the server namespace. The
//! devices are not persistent: closing the file removes the interface.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Creates TUN interface `name` (IFF_TUN | IFF_NO_PI: the file carries bare IP packets) in the
/// calling thread's network namespace and returns its non-blocking file.
pub(crate) fn open(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?} (1..15 bytes)"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;

    // SAFETY: ifreq is a plain C struct (name array + union of integers/arrays) for which the
    // all-zero bit pattern is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `ifr` is, on the tun
    // descriptor we just opened; both outlive the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("ioctl(TUNSETIFF, {name}): {e}"),
        ));
    }
    Ok(file)
}
