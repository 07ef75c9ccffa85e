//! `sipgateio-callevents simulate`: plays one call against a running server the way
//! sipgate would, so the whole flow can be tried without a sipgate account or a tunnel.
//!
//! The pure parts are separate from the HTTP part and tested with literal inputs: `args`
//! (the options and `--help`), `bodies` (the form bodies sipgate sends), `xml_reader` (the
//! XML subset sipgate reads), `check` (what sipgate accepts in it) and `response` (what a
//! checked answer asks for). `post` sends one event and prints it and its answer; `play`
//! plays the whole call; `tests/it/simulate.rs` runs the binary.
//!
//! The simulator cannot sign its requests: the signing key is sipgate's. It is meant for a
//! server started with `SKIP_SIGNATURE_VERIFICATION=true`, and says so when refused.

mod args;
mod bodies;
mod check;
mod play;
mod post;
mod response;
pub mod xml_reader;

use std::fmt;
use std::io::{self, Write};

use args::{Command, help, parse_args};
use bodies::{Call, Ids};
use play::simulate;

/// Why the simulation stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// One line: what went wrong and what to do about it.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad option or URL (exit code 2).
    Usage,
    /// The server refused the call, answered wrongly or could not be reached (exit code 1).
    Call,
}

impl Error {
    fn usage(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Usage,
            message: message.into(),
        }
    }

    fn call(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Call,
            message: message.into(),
        }
    }

    /// The process exit code: 2 for bad options, 1 for a call that did not go through.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Call => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The subcommand: `args` are the arguments after `simulate`; `webhook_url` reads the
/// settings' `WEBHOOK_URL` (or says why it cannot), for a run without a URL.
///
/// # Errors
/// [`ErrorKind::Usage`] for bad options or settings, [`ErrorKind::Call`] when the call did
/// not go through; the message is one line for the user.
pub fn main(
    args: impl IntoIterator<Item = String>,
    webhook_url: impl FnOnce() -> Result<String, String>,
) -> Result<(), Error> {
    let options = match parse_args(args, || webhook_url().map_err(Error::usage))? {
        Command::Help => {
            print!("{}", help());
            return Ok(());
        }
        Command::Run(options) => options,
    };
    let call = Call::new(&options, &Ids::random());
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = simulate(&options, &call, &mut out);
    // The transcript must be complete before main prints the error line on stderr.
    let _ = out.flush();
    result
}
