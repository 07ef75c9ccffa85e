//! Copies of this process's descriptors by number, on macOS and the BSDs: opening
//! `/dev/fd/N` duplicates descriptor N, whatever it is (in xnu, `fdesc_open` refuses with
//! the number noted, and `open1` in `bsd/vfs/vfs_syscalls.c` then duplicates it with
//! `dupfdopen`, as long as the access asked for is the descriptor's own).

#![cfg(not(target_os = "linux"))]

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// Copies descriptors through `/dev/fd`; nothing to hold open.
pub(in crate::server) struct Descriptors;

impl Descriptors {
    /// # Errors
    /// `/dev/fd` is missing or lists nothing.
    pub(in crate::server) fn open() -> io::Result<Descriptors> {
        std::fs::read_dir("/dev/fd")?
            .next()
            .transpose()?
            .map_or_else(
                || Err(io::Error::other("/dev/fd lists no descriptors")),
                |_| Ok(Descriptors),
            )
    }

    /// A copy of descriptor `number`: the same open socket (or file) under a new number,
    /// closed when the copy drops. Read and write access, as a socket has both.
    pub(in crate::server) fn copy(&self, number: RawFd) -> io::Result<OwnedFd> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/fd/{number}"))?;
        Ok(OwnedFd::from(file))
    }
}
