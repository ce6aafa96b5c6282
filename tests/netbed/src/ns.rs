//! Named network namespaces (`ip netns`) and running code inside them.
//!
//! A network namespace is a property of a *thread* on Linux: `setns(fd, CLONE_NEWNET)` moves
//! only the calling thread, and threads it spawns afterwards start in the same namespace.
//! Sockets, TUN devices and `/proc/sys/net` writes made by such a thread belong to it. So code
//! "runs in" a namespace by running on a thread that entered it first; the rest of the process
//! stays where it was.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, mpsc};
use std::thread::JoinHandle;

use crate::cmd;

/// Where `ip netns add` mounts the namespace files.
const NETNS_DIR: &str = "/run/netns";

/// Prefixes of the per-process unique names: `brp-<pid>-<n>` (phone), `brs-<pid>-<n>` (server).
pub(crate) const PHONE_PREFIX: &str = "brp";
pub(crate) const SERVER_PREFIX: &str = "brs";

/// A named network namespace owned by this process: created by `create`, deleted by `delete`
/// (or by `Drop` as a last resort).
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
    /// `/run/netns/NAME`, open for `setns`.
    file: Option<File>,
}

impl Netns {
    /// `ip netns add NAME`, then opens it for `setns`.
    pub(crate) fn create(name: &str) -> io::Result<Netns> {
        cmd::ip(&["netns", "add", name])?;
        let mut ns = Netns {
            name: name.to_string(),
            file: None,
        };
        let path = netns_path(name);
        ns.file = Some(
            File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?,
        );
        Ok(ns)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into this namespace.
    pub(crate) fn enter(&self) -> io::Result<()> {
        let file = self.file.as_ref().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} is deleted", self.name))
        })?;
        enter_fd(file, &self.name)
    }

    /// Runs `f` on a short-lived thread inside the namespace and waits for its result.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name(format!("ns-{}", self.name))
                .spawn_scoped(scope, || {
                    self.enter()?;
                    f()
                })?;
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Spawns a thread that enters the namespace and then runs `f`. Returns once the thread is
    /// inside the namespace, or with the error if it could not enter it.
    pub(crate) fn spawn<T, F>(&self, thread_name: String, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{} is deleted", self.name))
            })?
            .try_clone()?;
        let name = self.name.clone();
        let (tx, rx) = mpsc::channel::<io::Result<()>>();
        let handle = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let entered = enter_fd(&file, &name);
                drop(file);
                let failed = entered.is_err();
                let _ = tx.send(entered);
                if failed {
                    // Ends the thread without running `f` and without the panic hook's noise:
                    // the caller has the error already and joins this handle.
                    std::panic::resume_unwind(Box::new("setns failed"));
                }
                f()
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other(format!(
                "thread entering {} ended early",
                self.name
            ))),
        }
    }

    /// Writes sysctls (`net.ipv4.conf.all.rp_filter` style keys) in this namespace: a thread
    /// inside it writes `/proc/sys/...`, which the kernel resolves per namespace of the writer.
    pub(crate) fn sysctls(&self, settings: &[(&str, &str)]) -> io::Result<()> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ns = self.name.clone();
        self.run(move || {
            for (key, value) in &settings {
                let path = sysctl_path(key);
                std::fs::write(&path, value).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("sysctl {key}={value} in namespace {ns}: {e}"),
                    )
                })?;
            }
            Ok(())
        })
    }

    /// Reads one sysctl in this namespace.
    pub(crate) fn read_sysctl(&self, key: &str) -> io::Result<String> {
        let path = sysctl_path(key);
        let ns = self.name.clone();
        self.run(move || {
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|e| io::Error::new(e.kind(), format!("read {path:?} in {ns}: {e}")))
        })
    }

    /// Kills the processes still inside the namespace (started by the tests through
    /// `Testbed::command`), then deletes it. Idempotent.
    pub(crate) fn delete(&mut self) -> io::Result<()> {
        self.file = None;
        if !netns_path(&self.name).exists() {
            return Ok(());
        }
        kill_processes_in(&self.name);
        cmd::ip(&["netns", "delete", &self.name]).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("braid-netbed: cannot delete namespace {}: {e}", self.name);
        }
    }
}

fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

fn enter_fd(file: &File, name: &str) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor of a network namespace file (/run/netns/NAME) that
    // outlives the call; setns only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns into network namespace {name}: {e}"),
        ));
    }
    Ok(())
}

/// True when a namespace of this name exists.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Names of all named namespaces (`/run/netns`).
pub(crate) fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes a named namespace that no live `Testbed` owns (for example one left by a crashed
/// `braid-netbed up`): kills the processes inside, then `ip netns delete`. Returns whether it
/// existed.
pub fn delete_namespace(name: &str) -> io::Result<bool> {
    if !exists(name) {
        return Ok(false);
    }
    kill_processes_in(name);
    cmd::ip(&["netns", "delete", name])?;
    Ok(true)
}

/// SIGKILLs every process in namespace `name` (`ip netns pids`). These can only be processes
/// that this harness (or a test through it) started there.
pub(crate) fn kill_processes_in(name: &str) {
    let Ok(pids) = cmd::ip(&["netns", "pids", name]) else {
        return;
    };
    let me = std::process::id();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        if pid as u32 == me {
            continue;
        }
        // SAFETY: plain kill(2) on a pid just listed as a member of our private namespace.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// A fresh pair of names `brp-<pid>-<n>` / `brs-<pid>-<n>`, unique within this process and,
/// by the pid, across processes running at the same time.
pub(crate) fn unique_names() -> (String, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let phone = format!("{PHONE_PREFIX}-{pid}-{n}");
        let server = format!("{SERVER_PREFIX}-{pid}-{n}");
        if !exists(&phone) && !exists(&server) {
            return (phone, server);
        }
    }
}

/// Once per process: deletes namespaces `brp-*`/`brs-*` left by processes that died without
/// cleaning up (their pid is gone, or it is ours, reused from a dead process).
pub(crate) fn remove_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let me = std::process::id();
        for name in list() {
            let Some(pid) = owner_pid(&name) else {
                continue;
            };
            if pid == me || !Path::new(&format!("/proc/{pid}")).exists() {
                kill_processes_in(&name);
                match cmd::ip(&["netns", "delete", &name]) {
                    Ok(_) => eprintln!("braid-netbed: removed stale namespace {name}"),
                    Err(e) => eprintln!("braid-netbed: cannot remove stale namespace: {e}"),
                }
            }
        }
    });
}

/// The pid in a `brp-<pid>-<n>` / `brs-<pid>-<n>` name.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(PHONE_PREFIX)
        .or_else(|| name.strip_prefix(SERVER_PREFIX))?
        .strip_prefix('-')?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("brp-123-0"), Some(123));
        assert_eq!(owner_pid("brs-9-17"), Some(9));
        assert_eq!(owner_pid("brp-x-0"), None);
        assert_eq!(owner_pid("braid-phone"), None);
        assert_eq!(owner_pid("brp-12"), None);
    }

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.c-wifi.rp_filter"),
            Path::new("/proc/sys/net/ipv4/conf/c-wifi/rp_filter")
        );
    }
}
