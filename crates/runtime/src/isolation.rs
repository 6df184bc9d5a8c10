//! Process-level plumbing that needs the operating system directly: the answer FIFO, a private
//! `/tmp/algoout` per worker, and killing a worker's whole process group.
//!
//! Why a private `/tmp/algoout`: the ADK hard-codes its answer channel as that path, so two
//! workers would otherwise share one FIFO and could read each other's answers. Each worker
//! therefore starts in its own mount namespace where its own FIFO is bind-mounted over
//! `/tmp/algoout`; the rest of `/tmp` stays the machine's (a data directory under `/tmp` keeps
//! working). A bind mount needs an existing target, so the runtime keeps an empty placeholder
//! file at `/tmp/algoout` in the machine's own namespace; nothing is ever written to it.
//!
//! This needs `CAP_SYS_ADMIN` (root, as on this project's machines). Where it is missing,
//! starting a worker fails with [`IsolationError`], whose message says so: we refuse rather than
//! silently let workers share a FIFO.
//!
//! This is the only module of the crate allowed to use `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot give the worker a private /tmp ({step}: {source}); workers need a mount namespace \
     (run insights as root, or with CAP_SYS_ADMIN) so that each has its own /tmp/algoout"
)]
pub(crate) struct IsolationError {
    step: &'static str,
    source: io::Error,
}

/// Creates the FIFO at `path` (mode 0600).
pub(crate) fn mkfifo(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where the ADK expects its answer FIFO.
pub(crate) const ADK_FIFO: &str = "/tmp/algoout";

/// Arranges for `command` to run with `fifo` mounted over `/tmp/algoout`, in its own process
/// group (so that a timeout can kill the algorithm's children too).
pub(crate) fn isolate(command: &mut Command, fifo: &Path) -> io::Result<()> {
    // The child changes to its working directory before `pre_exec` runs, so a relative path
    // would be looked up from the wrong place and the mount would fail with ENOENT.
    if !fifo.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the answer FIFO {} must be an absolute path (the runtime's directories are resolved at start)",
                fifo.display()
            ),
        ));
    }
    ensure_mount_target()?;
    let source = cstring(fifo)?;
    let target = CString::new(ADK_FIFO).expect("no NUL");
    let root = CString::new("/").expect("no NUL");
    command.process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called. It calls only the raw `unshare` and `mount`
    // system calls on C strings built before the fork, allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Keep our mounts out of the parent namespace.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Explains a failed spawn: when the namespace set-up was refused, say what is needed.
pub(crate) fn explain_spawn_error(e: io::Error) -> Result<io::Error, IsolationError> {
    match e.raw_os_error() {
        Some(libc::EPERM) => Err(IsolationError {
            step: "unshare/mount",
            source: e,
        }),
        _ => Ok(e),
    }
}

/// Sends SIGKILL to every process in the process group `pgid` (the worker and its children).
pub(crate) fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Creates the empty placeholder at `/tmp/algoout` if it is missing (a tmp cleaner may have
/// removed it). An existing file of any kind is left as it is: it only serves as a mount point.
fn ensure_mount_target() -> io::Result<()> {
    match std::fs::symlink_metadata(ADK_FIFO) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(ADK_FIFO)
            {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}
