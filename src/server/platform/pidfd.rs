//! Copies of this process's descriptors by number, on Linux: `pidfd_getfd` (Linux 5.6).

#![cfg(target_os = "linux")]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::process::{PidfdFlags, PidfdGetfdFlags};

/// This process as a pidfd that descriptors can be copied from.
pub(in crate::server) struct Descriptors {
    this_process: OwnedFd,
}

impl Descriptors {
    /// # Errors
    /// The kernel is older than 5.6, or a sandbox refuses the calls (Docker's default
    /// seccomp profile does, without `CAP_SYS_PTRACE`).
    pub(in crate::server) fn open() -> io::Result<Descriptors> {
        let this_process =
            rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty())?;
        // Tried on a descriptor of our own, so a refusal shows now and not under attack.
        let own = this_process.as_raw_fd();
        rustix::process::pidfd_getfd(&this_process, own, PidfdGetfdFlags::empty())?;
        Ok(Descriptors { this_process })
    }

    /// A copy of descriptor `number`: the same open socket (or file) under a new number,
    /// closed when the copy drops.
    pub(in crate::server) fn copy(&self, number: RawFd) -> io::Result<OwnedFd> {
        Ok(rustix::process::pidfd_getfd(
            &self.this_process,
            number,
            PidfdGetfdFlags::empty(),
        )?)
    }
}
