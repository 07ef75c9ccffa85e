//! The journal's schema, as a list of steps: a new file runs them all, an older file the
//! ones it lacks, and `PRAGMA user_version` says how many a file has. The names are a
//! contract with people who query the file (docs/journal.md): a later step may add, never
//! rename or drop.

use rusqlite::{Connection, Transaction};

/// Each step of the schema, in order; step `n` takes a file from version `n - 1` to `n`.
const STEPS: &[&str] = &[
    // 1: the events, one row each, as received.
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event TEXT NOT NULL,
        call_id TEXT NOT NULL,
        direction TEXT,
        from_number TEXT,
        to_number TEXT,
        answering_number TEXT,
        cause TEXT,
        dtmf TEXT,
        rule TEXT,
        fields TEXT NOT NULL
     );
     -- With the event: a hangup's lookup of its call's newCall and answer is one seek,
     -- however many events the call has.
     CREATE INDEX events_call_id ON events (call_id, event);
     CREATE INDEX events_received_at ON events (received_at);",
    // 2: one row per call. A view, so it is always current and costs the writer nothing;
    // julianday() rather than newer time functions, so the sqlite3 of older systems reads it.
    "CREATE VIEW calls AS
     WITH per_call AS (
        SELECT call_id,
               MIN(id) AS first_id,
               MIN(CASE WHEN event = 'newCall' THEN id END) AS new_call_id,
               MIN(CASE WHEN event = 'answer' THEN id END) AS answer_id,
               MAX(CASE WHEN event = 'hangup' THEN id END) AS hangup_id,
               MIN(received_at) AS first_at
        FROM events
        GROUP BY call_id
     ),
     joined AS (
        SELECT p.call_id,
               first.direction, first.from_number, first.to_number,
               COALESCE(json_extract(new_call.fields, '$.\"user[]\"'), '[]') AS users,
               COALESCE(new_call.received_at, p.first_at) AS started_at,
               new_call.received_at AS new_call_at,
               answer.received_at AS answered_at,
               hangup.received_at AS ended_at,
               COALESCE(NULLIF(json_extract(answer.fields, '$.user'), ''),
                        answer.answering_number) AS answered_by,
               hangup.cause
        FROM per_call p
        JOIN events first ON first.id = p.first_id
        LEFT JOIN events new_call ON new_call.id = p.new_call_id
        LEFT JOIN events answer ON answer.id = p.answer_id
        LEFT JOIN events hangup ON hangup.id = p.hangup_id
     )
     SELECT call_id, direction, from_number, to_number, users, started_at, answered_at,
            ended_at, answered_by,
            CASE WHEN new_call_at IS NOT NULL AND COALESCE(answered_at, ended_at) IS NOT NULL
                 THEN MAX(0, ROUND((julianday(COALESCE(answered_at, ended_at))
                                    - julianday(new_call_at)) * 86400, 3))
            END AS ring_seconds,
            CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL
                 THEN MAX(0, ROUND((julianday(ended_at) - julianday(answered_at)) * 86400, 3))
            END AS talk_seconds,
            cause,
            CASE WHEN ended_at IS NULL THEN 'ongoing'
                 WHEN answered_at IS NOT NULL THEN 'answered'
                 WHEN cause IN ('cancel', 'noAnswer', 'normalClearing') THEN 'missed'
                 WHEN cause = 'busy' THEN 'busy'
                 WHEN cause = 'forwarded' THEN 'forwarded'
                 ELSE 'failed'
            END AS result
     FROM joined;",
];

/// The schema version this binary writes.
pub const VERSION: u32 = STEPS.len() as u32;

/// The version a file is at: 0 for a new (empty) file.
///
/// # Errors
/// The file is not an SQLite database, or cannot be read.
pub(super) fn version_of(connection: &Connection) -> rusqlite::Result<u32> {
    connection.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Runs the steps a file at `from` lacks, and records the new version, in `transaction`.
///
/// # Errors
/// A step failed; the transaction is not committed, so the file stays as it was.
pub(super) fn migrate(transaction: &Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    for step in STEPS.iter().skip(from as usize) {
        transaction.execute_batch(step)?;
    }
    transaction.pragma_update(None, "user_version", VERSION)
}

/// The first steps only: a file as an older binary made it, for the migration tests.
#[cfg(test)]
pub(super) fn steps_up_to(version: u32) -> String {
    STEPS[..version as usize].join("\n")
}
