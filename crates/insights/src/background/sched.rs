//! The kernel calls behind the background's priorities: switching a thread of this process
//! between SCHED_IDLE and SCHED_OTHER, and setting its niceness, by its thread id. The second
//! place in the tree with `unsafe` (after the runtime's `isolation`): no crate wraps
//! `sched_setscheduler` or `setpriority` for another thread (thread-priority's cross-thread
//! call also resets the calling thread's niceness).
#![allow(unsafe_code)]

/// This thread's kernel id.
pub(super) fn current_tid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Puts thread `tid` under SCHED_IDLE (`idle`) or back under SCHED_OTHER. The caller makes sure
/// `tid` is a live thread of this process (threads unregister before they exit).
pub(super) fn set_idle(tid: i32, idle: bool) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it.
    let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets thread `tid`'s niceness (the caller makes sure it is a live thread of this process).
pub(super) fn set_nice(tid: i32, nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers; on Linux PRIO_PROCESS with a thread id sets that
    // thread's niceness.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether a thread of this process that went under SCHED_IDLE may come back (an unprivileged
/// process may not when its RLIMIT_NICE is 0): tried on a thread of its own.
pub(super) fn can_leave_idle() -> bool {
    std::thread::spawn(|| {
        let tid = current_tid();
        set_idle(tid, true).is_ok() && set_idle(tid, false).is_ok()
    })
    .join()
    .unwrap_or(false)
}

/// Thread `tid`'s scheduling attributes, as sched_getattr reports them.
fn attributes(tid: i32) -> std::io::Result<libc::sched_attr> {
    // SAFETY: sched_attr is plain integers, for which all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>() as libc::c_uint;
    // SAFETY: `attr` is writable for `size` bytes and outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &mut attr, size, 0) };
    if rc == 0 {
        attr.size = size;
        Ok(attr)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks the scheduler to run thread `tid` in slices of `slice_ns` (0: the default slice),
/// keeping its policy and niceness. This is EEVDF's custom slice (Linux 6.12+, clamped there to
/// 0.1–100 ms): a thread's virtual deadline is its slice ahead of it, so a thread with a short
/// slice that wakes has the earlier deadline and preempts one running a long slice, where by
/// default the running thread keeps the CPU until its slice is used. Older kernels take the
/// value and ignore it for SCHED_OTHER.
pub(super) fn set_slice(tid: i32, slice_ns: u64) -> std::io::Result<()> {
    let mut attr = attributes(tid)?;
    // Keep only what sched_getattr reports and sched_setattr takes back as it was.
    attr.sched_flags &= libc::SCHED_FLAG_RESET_ON_FORK as u64;
    attr.sched_runtime = slice_ns;
    // SAFETY: `attr` is a valid sched_attr of `attr.size` bytes that outlives the call, which
    // only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &attr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Thread `tid`'s scheduling policy (`SCHED_OTHER`, `SCHED_IDLE`, …) and niceness.
pub(super) fn priority_of(tid: i32) -> std::io::Result<(u32, i32)> {
    attributes(tid).map(|a| (a.sched_policy, a.sched_nice))
}

/// The slice thread `tid` runs in, in nanoseconds (sched_getattr reports the slice in force,
/// the default one included; 0 before Linux 6.12).
pub(super) fn slice_of(tid: i32) -> std::io::Result<u64> {
    attributes(tid).map(|a| a.sched_runtime)
}
