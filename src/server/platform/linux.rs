//! The Linux path: threads told apart by the system call they are blocked in, trickling
//! clients cut, and the listener's timeouts passed on to accepted sockets by the kernel.

#![cfg(target_os = "linux")]

use std::os::fd::RawFd;

use super::{Blocked, Descriptors};

/// Threads are told apart by what they are blocked in (see [`blocked_in`]).
pub(in crate::server) const SEES_BLOCKED_CALLS: bool = true;

/// Set the timeouts on the listening socket: options set there before `listen()` are
/// copied to every socket it accepts, timeouts included.
pub(in crate::server) const TIMEOUTS_ON_LISTENER: bool = true;

/// What shuts down the sockets of clients that trickle their requests in; `None`, with a
/// warning logged, where Linux refuses to copy descriptors.
pub(in crate::server) fn trickle_cutter() -> Option<Descriptors> {
    match Descriptors::open() {
        Ok(descriptors) => Some(descriptors),
        Err(error) => {
            log::warn!(
                "cannot end connections that trickle their requests in here (pidfd_getfd: {error}; it needs \
                 Linux 5.6, and container sandboxes may refuse it); they count as stuck instead. A reverse \
                 proxy in front ends them (docs/limits.md)"
            );
            None
        }
    }
}

/// Nothing to do after `accept()`: the kernel has given the socket the listener's
/// timeouts.
pub(in crate::server) struct AcceptedSockets;

impl AcceptedSockets {
    pub(in crate::server) fn new(
        _listening_on: std::net::SocketAddr,
        _read_timeout: std::time::Duration,
        _write_timeout: std::time::Duration,
    ) -> AcceptedSockets {
        AcceptedSockets
    }

    #[inline]
    pub(in crate::server) fn prepare_new(&mut self) {}
}

/// The kernel's id of the calling thread, from `/proc/thread-self` (`PID/task/TID`); 0
/// when it cannot be read.
pub(in crate::server) fn current_thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// What thread `thread_id` of this process is blocked in, from
/// `/proc/self/task/TID/syscall`.
pub(in crate::server) fn blocked_in(thread_id: u32) -> Blocked {
    if thread_id == 0 {
        return Blocked::Other;
    }
    std::fs::read_to_string(format!("/proc/self/task/{thread_id}/syscall"))
        .map_or(Blocked::Other, |text| parse_syscall(&text))
}

/// `/proc/PID/task/TID/syscall` holds the number of the system call a thread is blocked
/// in and its arguments in hexadecimal (`0 0x7 0x7f… …`), or `running`.
fn parse_syscall(text: &str) -> Blocked {
    let mut fields = text.split_whitespace();
    let Some(number) = fields
        .next()
        .and_then(|field| field.parse::<libc::c_long>().ok())
    else {
        return Blocked::Other;
    };
    match number {
        libc::SYS_futex => Blocked::Futex,
        // std reads a socket with recv(), which glibc makes a recvfrom system call.
        libc::SYS_read | libc::SYS_recvfrom => fields
            .next()
            .and_then(|first| i64::from_str_radix(first.strip_prefix("0x")?, 16).ok())
            .and_then(|descriptor| RawFd::try_from(descriptor).ok())
            .map_or(Blocked::Other, Blocked::Reading),
        _ => Blocked::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Duration;

    use super::*;

    /// The deadlock waits on a channel: a thread blocked receiving from one is seen waiting
    /// on a futex; a sleeping one and a running one are not.
    #[test]
    fn a_thread_waiting_on_a_channel_is_seen_waiting_on_a_futex() {
        let spawn_waiting = |wait: fn(std::sync::mpsc::Receiver<()>)| {
            let (stop, receiver) = std::sync::mpsc::channel::<()>();
            let (id_sender, id) = std::sync::mpsc::channel();
            let handle = thread::spawn(move || {
                id_sender.send(current_thread_id()).unwrap();
                wait(receiver);
            });
            let id = id.recv().unwrap();
            assert_ne!(id, 0, "Linux has /proc/thread-self");
            (stop, handle, id)
        };
        let (stop_receiving, receiving, receiving_id) = spawn_waiting(|receiver| {
            let _ = receiver.recv();
        });
        let (stop_sleeping, sleeping, sleeping_id) = spawn_waiting(|_| {
            thread::sleep(Duration::from_millis(300));
        });
        thread::sleep(Duration::from_millis(100));
        assert_eq!(blocked_in(receiving_id), Blocked::Futex);
        assert_ne!(blocked_in(sleeping_id), Blocked::Futex);
        assert_ne!(
            blocked_in(current_thread_id()),
            Blocked::Futex,
            "this thread runs (in the read of that very file)"
        );
        assert_eq!(blocked_in(0), Blocked::Other);
        drop((stop_receiving, stop_sleeping));
        receiving.join().unwrap();
        sleeping.join().unwrap();
    }

    #[test]
    fn the_syscall_file_tells_a_socket_read_from_a_futex_wait() {
        let read = format!(
            "{} 0x7 0x7f3c2a1fe000 0x400 0x0 0x0 0x0 0x7f3c2a1fdb28 0x7f3c2b0e1b7d\n",
            libc::SYS_read
        );
        assert_eq!(parse_syscall(&read), Blocked::Reading(7));
        let recv = format!(
            "{} 0x1f 0x7f3c2a1fe000 0x2000 0x0 0x0 0x0 0x7ffd 0x7f3c",
            libc::SYS_recvfrom
        );
        assert_eq!(parse_syscall(&recv), Blocked::Reading(31));
        let futex = format!(
            "{} 0x55d0 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f3c",
            libc::SYS_futex
        );
        assert_eq!(parse_syscall(&futex), Blocked::Futex);
        let send = format!(
            "{} 0x7 0x7f3c 0x10 0x0 0x0 0x0 0x7ffd 0x7f3c",
            libc::SYS_sendto
        );
        assert_eq!(parse_syscall(&send), Blocked::Other);
        for other in ["running\n", "-1 0x7ffd 0x7f3c\n", "", "0 7"] {
            assert_eq!(parse_syscall(other), Blocked::Other, "{other:?}");
        }
    }
}
