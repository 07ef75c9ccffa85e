//! Benchmark baseline (`bench/run.sh`): the least a tiny_http server can do.
//!
//! The same HTTP layer and socket setup as the real server (the tiny_http fork, TCP_NODELAY
//! on the listener, `Server::from_listener`, `WORKERS` threads calling `recv()`), but no
//! routing, no body parsing, no signature check and no event line: every request, whatever
//! its method and path, is answered 200 with the same XML our `/new-call` sends under the
//! default `WEBHOOK_URL`, with the same `Server` and `Content-Type` headers.
//!
//! `LISTEN_ADDR=127.0.0.1:8090 WORKERS=4 cargo run --release --example baseline`; it runs
//! until it is killed.

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;

use tiny_http::{Header, Headers, Response, StatusCode};

/// What `/new-call` answers with `WEBHOOK_URL=http://localhost:8080` (the default).
const XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <Response onAnswer=\"http://localhost:8080/on-answer\" \
    onHangup=\"http://localhost:8080/on-hangup\" />\n";

fn main() {
    let addr: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8090".to_owned())
        .parse()
        .expect("LISTEN_ADDR is an IP address and port");
    // The real server's default: the number of CPUs, at least 4.
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(4, |n| n.get().max(4)));

    let listener = TcpListener::bind(addr).expect("cannot listen on LISTEN_ADDR");
    socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .expect("TCP_NODELAY");
    let local_addr = listener.local_addr().expect("the listener has an address");
    // The same idle connection threads as the server (src/server.rs, CONNECTION_THREADS),
    // so neither loses connections to tiny_http's thread-pool race.
    let config = tiny_http::ServerConfig::new_http(local_addr)
        .expect("a tiny_http config")
        .set_min_threads(64);
    let server = tiny_http::Server::from_listener(listener, local_addr.into(), config)
        .expect("tiny_http takes the listener");
    let server = Arc::new(server);
    let content_type = Header::from_bytes("Content-Type", "application/xml; charset=UTF-8")
        .expect("a valid header");
    let server_name =
        Header::from_bytes("Server", "sipgateio-callevents/baseline").expect("a valid header");
    eprintln!("baseline: listening on {local_addr} with {workers} workers");

    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let server = Arc::clone(&server);
            let content_type = content_type.clone();
            let server_name = server_name.clone();
            thread::spawn(move || {
                loop {
                    match server.recv() {
                        Ok(Ok(request)) => {
                            let mut headers = Headers::with_capacity(2);
                            headers.push(server_name.clone());
                            headers.push(content_type.clone());
                            let response = Response::new(
                                StatusCode(200),
                                headers,
                                Cursor::new(XML.as_bytes()),
                                Some(XML.len()),
                                None,
                            );
                            let _ = request.respond(response);
                        }
                        // tiny_http answered a malformed request itself.
                        Ok(Err(_)) => {}
                        Err(error) => {
                            eprintln!("baseline: the listener failed: {error}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}
