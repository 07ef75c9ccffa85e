//! Load client for `scripts/load.sh`: valid, unsigned call events over many keep-alive
//! connections, each with a unique callId, to a server on the loopback interface only.
//!
//! ```text
//! cargo run --release --example load -- ADDR EVENTS CONNECTIONS MAX_SECONDS ANSWERED_FILE
//! ```
//!
//! Writes the callId of every request answered 200 to ANSWERED_FILE (one a line) and a
//! summary to stdout. Stops at EVENTS requests, after MAX_SECONDS, or, per connection, at
//! the first connection error (the server stopping); an error is counted, not retried.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";

struct Tally {
    answered: Vec<String>,
    other_status: u64,
    connection_errors: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, events, connections, max_seconds, answered_file] = args.as_slice() else {
        eprintln!("usage: load ADDR EVENTS CONNECTIONS MAX_SECONDS ANSWERED_FILE");
        return ExitCode::from(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR is ip:port");
    // Never anything but this machine.
    if !addr.ip().is_loopback() {
        eprintln!("load: refusing {addr}: only loopback addresses are allowed");
        return ExitCode::from(2);
    }
    let events: u64 = events.parse().expect("EVENTS is a number");
    let connections: u64 = connections.parse().expect("CONNECTIONS is a number");
    let deadline = Instant::now() + Duration::from_secs(max_seconds.parse().expect("seconds"));

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Connections are opened one at a time, each after the previous one's first answer:
    // tiny_http's thread pool could leave a connection from a burst of new ones without a
    // thread until another connection ended (RELIABILITY.md, "Findings since fixed, or
    // gone"), which would stall it for the whole run. The load itself is then fully
    // concurrent.
    let workers: Vec<_> = (0..connections)
        .map(|connection| {
            let next = Arc::clone(&next);
            let (opened, is_open) = std::sync::mpsc::channel();
            let worker = thread::spawn(move || {
                run_connection(addr, connection, &next, events, deadline, &opened)
            });
            let _ = is_open.recv_timeout(Duration::from_secs(10));
            worker
        })
        .collect();
    let mut total = Tally {
        answered: Vec::new(),
        other_status: 0,
        connection_errors: 0,
    };
    for worker in workers {
        let tally = worker.join().expect("a load thread panicked");
        total.answered.extend(tally.answered);
        total.other_status += tally.other_status;
        total.connection_errors += tally.connection_errors;
    }
    let elapsed = started.elapsed();
    let mut out = BufWriter::new(std::fs::File::create(answered_file).expect("ANSWERED_FILE"));
    for call_id in &total.answered {
        writeln!(out, "{call_id}").unwrap();
    }
    out.flush().unwrap();
    println!(
        "sent {} answered_200 {} other_status {} connection_errors {} connections {} seconds {:.2} per_second {:.0}",
        next.load(Ordering::SeqCst).min(events),
        total.answered.len(),
        total.other_status,
        total.connection_errors,
        connections,
        elapsed.as_secs_f64(),
        total.answered.len() as f64 / elapsed.as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// The body and route of request number `n`: the four event routes in turn.
fn event(n: u64, call_id: &str) -> (&'static str, String) {
    match n % 4 {
        0 => (
            "/new-call",
            format!(
                "event=newCall&direction=in&from=492111234567&to=4915791234567&callId={call_id}"
            ),
        ),
        1 => (
            "/on-answer",
            format!(
                "event=answer&direction=in&from=492111234567&to=4915791234567&answeringNumber=4915791234567&callId={call_id}"
            ),
        ),
        2 => (
            "/on-hangup",
            format!(
                "event=hangup&cause=normalClearing&direction=in&from=492111234567&to=4915791234567&callId={call_id}"
            ),
        ),
        _ => ("/on-dtmf", format!("event=dtmf&dtmf=0815&callId={call_id}")),
    }
}

fn run_connection(
    addr: SocketAddr,
    connection: u64,
    next: &AtomicU64,
    events: u64,
    deadline: Instant,
    opened: &std::sync::mpsc::Sender<()>,
) -> Tally {
    let mut tally = Tally {
        answered: Vec::new(),
        other_status: 0,
        connection_errors: 0,
    };
    let Ok(stream) = TcpStream::connect(addr) else {
        tally.connection_errors += 1;
        let _ = opened.send(());
        return tally;
    };
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= events || Instant::now() >= deadline {
            return tally;
        }
        let call_id = format!("load-{connection}-{n}");
        let (path, body) = event(n, &call_id);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let result = writer
            .write_all(request.as_bytes())
            .and_then(|()| read_status(&mut reader));
        let _ = opened.send(());
        match result {
            Ok(200) => tally.answered.push(call_id),
            Ok(_) => tally.other_status += 1,
            Err(error) => {
                // Expected once per connection when the server is stopped under load.
                eprintln!("load: connection {connection}, {call_id}: {error}");
                tally.connection_errors += 1;
                return tally;
            }
        }
    }
}

/// Reads one response and returns its status; the body is read by its Content-Length.
fn read_status(reader: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(eof());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(eof)?;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(eof());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| eof())?;
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}
