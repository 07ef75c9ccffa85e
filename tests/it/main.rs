//! The integration tests: one crate, so `support` is built once and every helper in it is
//! used by some test (ripgrep and rust-analyzer lay out theirs the same way).
//!
//! All tests share one process and run on parallel threads. They start servers on
//! 127.0.0.1:0 (in this process, or the binary as a child), so they do not meet; those that
//! load the machine or time an answer take [`support::exclusive`] first.

// A test crate exports nothing, so every `pub` here is unreachable; it marks what `support`
// offers the test modules.
#![allow(unreachable_pub)]

mod support;

mod binary;
mod deploy;
mod doctor;
mod faults;
mod fixtures;
mod health;
mod hostile;
mod http;
mod journal;
mod journal_faults;
mod metrics;
mod nginx;
mod register;
mod rules;
mod simulate;
mod slow_clients;
