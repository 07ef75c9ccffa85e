//! sipgateio-callevents: receives sipgate.io call-event webhooks and answers them.
//!
//! `newCall` is answered with XML that subscribes to the call's `answer` and `hangup`
//! events; every accepted event prints one line to stdout. See ARCHITECTURE.md for the
//! map of the modules.

pub mod answer;
pub mod app;
pub mod calls;
pub mod config;
pub mod doctor;
pub mod event;
pub mod exchange;
pub mod form;
pub mod health;
pub mod journal;
pub mod metrics;
pub mod output;
pub mod register;
pub mod routes;
pub mod rules;
pub mod server;
pub mod signature;
pub mod simulate;
pub mod warnings;
pub mod xml;
