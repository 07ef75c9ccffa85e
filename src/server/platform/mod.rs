//! What the server does differently from one operating system to another, and nothing
//! else: the rest of `server/` is the same everywhere.
//!
//! Linux does three things the server builds on. It shows which system call each thread
//! is blocked in (`/proc/self/task/TID/syscall`), so threads deadlocked inside tiny_http
//! are told from live ones at once, and a thread reading a trickled request is found with
//! the socket it reads. It lets a process copy any of its own descriptors by number
//! (`pidfd_getfd`), so that socket, which only tiny_http holds, can be shut down. And it
//! gives accepted sockets the timeouts set on the listening socket, which is how the
//! timeouts reach sockets that tiny_http accepts and keeps to itself.
//!
//! macOS does none of this: its kernel copies no timeouts to an accepted socket (xnu's
//! `sonewconn_internal` in `bsd/kern/uipc_socket2.c` copies the buffer sizes, not
//! `sb_timeo`), and nothing tells what a thread waits for. The portable path stands in:
//! after each `accept()` it finds the new socket among the process's descriptors and sets
//! the timeouts itself, and threads held inside tiny_http are counted as stuck once past
//! the longest a live client can hold them, without cutting anyone early.
//!
//! The cargo feature `portable` puts a Linux build on the portable path, so the tests run
//! the code macOS runs. Only copying a descriptor by number stays Linux's own there:
//! macOS does it by opening `/dev/fd/N`, which Linux refuses for sockets.

// Each of these files also says in its first line which systems it is for.
mod dev_fd;
#[cfg(not(feature = "portable"))]
mod linux;
mod pidfd;
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
mod portable;

#[cfg(not(target_os = "linux"))]
pub(super) use dev_fd::Descriptors;
#[cfg(target_os = "linux")]
pub(super) use pidfd::Descriptors;

#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub(super) use linux::{
    AcceptedSockets, SEES_BLOCKED_CALLS, TIMEOUTS_ON_LISTENER, blocked_in, current_thread_id,
    trickle_cutter,
};
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
pub(super) use portable::{
    AcceptedSockets, SEES_BLOCKED_CALLS, TIMEOUTS_ON_LISTENER, blocked_in, current_thread_id,
    trickle_cutter,
};

use std::os::fd::RawFd;

/// What a connection thread is blocked in, as far as the system tells.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Blocked {
    /// The futex system call: a lock, or a channel.
    Futex,
    /// Reading this descriptor. Inside tiny_http, a connection thread reads nothing but
    /// its socket.
    #[cfg_attr(
        any(not(target_os = "linux"), feature = "portable"),
        expect(dead_code, reason = "only Linux tells which descriptor a thread reads")
    )]
    Reading(RawFd),
    /// Running, in another system call, or not known.
    Other,
}

/// Errors that `accept()` reports for a connection that failed before it was taken,
/// beyond those every Unix system shares; they are retried like `EAGAIN`.
#[cfg(target_os = "linux")]
pub(super) const PENDING_CONNECTION_ERRORS: &[i32] = &[libc::ENONET];
#[cfg(not(target_os = "linux"))]
pub(super) const PENDING_CONNECTION_ERRORS: &[i32] = &[];
