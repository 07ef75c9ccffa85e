//! Shared by the integration tests: a real server on 127.0.0.1:0 (in-process or the
//! binary), an HTTP client, raw TCP, and the fixtures.

mod client;
mod process;
mod server;
mod wire;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sipgateio_callevents::event::EventKind;
use sipgateio_callevents::routes;

pub use client::*;
pub use process::*;
pub use server::*;
pub use wire::*;

pub const FORM: &str = "application/x-www-form-urlencoded; charset=UTF-8";
pub const CID1: &str =
    "54566B150B0C0D3A5D534D5F565D7C5F54535A5C5B53525A7E5B5D5745504457444C425D5057";
pub const CID2: &str =
    "54566B150B0C0D3A5D50435A5D5A7E5B525551575452535A7C50565745514058474144555A56";
pub const CID3: &str =
    "54566B150B0C0D3A5D564D5F565F735B54565B54505E535E78595756455045544647465F5A57";

/// Held by the tests that load the machine (hundreds of connections, floods) or assert how
/// long something takes, so that no two of them run at once. As test binaries of their own
/// they ran one file at a time; in one process on a 2-core runner, a flood beside a 100 ms
/// bound would make that bound flaky. A test that failed while holding it does not stop
/// the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The bytes of `tests/fixtures/{name}`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Every fixture of an event sipgate sends, with its kind. Fixture 19, sipgateio-node's
/// signature test vector, is not one: it has no callId.
pub const EVENT_FIXTURES: [(&str, EventKind); 18] = [
    ("01-newcall-in.form", EventKind::NewCall),
    ("02-newcall-in-group.form", EventKind::NewCall),
    ("03-newcall-in-anonymous.form", EventKind::NewCall),
    ("04-newcall-out.form", EventKind::NewCall),
    ("05-newcall-in-forwarded-voicemail.form", EventKind::NewCall),
    ("06-newcall-in-utf8-name.form", EventKind::NewCall),
    ("07-answer-in.form", EventKind::Answer),
    ("08-answer-out.form", EventKind::Answer),
    ("09-hangup-normalclearing.form", EventKind::Hangup),
    ("10-hangup-cancel-anonymous.form", EventKind::Hangup),
    ("11-hangup-forwarded.form", EventKind::Hangup),
    ("12-hangup-busy-out.form", EventKind::Hangup),
    ("13-dtmf-digits.form", EventKind::Dtmf),
    ("14-dtmf-omitted.form", EventKind::Dtmf),
    ("15-dtmf-empty.form", EventKind::Dtmf),
    ("16-legacy-newcall-in-minimal.form", EventKind::NewCall),
    (
        "17-legacy-newcall-out-extension-from.form",
        EventKind::NewCall,
    ),
    ("18-signed-real-capture.form", EventKind::NewCall),
];

/// The kind of the event in fixture `name`.
pub fn kind_of(name: &str) -> EventKind {
    EVENT_FIXTURES
        .iter()
        .find(|(fixture, _)| *fixture == name)
        .unwrap_or_else(|| panic!("{name} is not an event fixture"))
        .1
}

/// The route sipgate posts an event of `kind` to.
pub fn route(kind: EventKind) -> &'static str {
    match kind {
        EventKind::NewCall => routes::NEW_CALL,
        EventKind::Answer => routes::ON_ANSWER,
        EventKind::Hangup => routes::ON_HANGUP,
        EventKind::Dtmf => routes::ON_DTMF,
    }
}

/// The real signed request (fixture 18) and its signature header.
pub fn signed_capture() -> (Vec<u8>, String) {
    let signature = String::from_utf8(fixture("18-signed-real-capture.sig")).unwrap();
    (
        fixture("18-signed-real-capture.form"),
        signature.trim().to_owned(),
    )
}

/// The first `name` on `PATH`, as a shell would find it.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether the CI variable is set: there, a test that needs a tool fails without it
/// instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Says why a test does nothing. Written to stderr directly, not with `eprintln!`, which
/// the test harness captures and hides for passing tests.
pub fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// A loopback port nobody listens on right now (another process may take it later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh empty directory under the target dir, a new one on every call: tests running
/// at the same time in this process may ask for the same name.
pub fn temp_dir(name: &str) -> PathBuf {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
