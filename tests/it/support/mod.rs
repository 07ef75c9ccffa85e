//! Shared by the integration tests: a real server on 127.0.0.1:0 (in-process or the
//! binary), an HTTP client, raw TCP, and the fixtures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use sipgateio_callevents::config::Config;
use sipgateio_callevents::output::EventSink;
use sipgateio_callevents::router::{App, Incoming, Reply};
use sipgateio_callevents::server::{Server, ServerOptions, Stopper};
use sipgateio_callevents::signature::Verifier;

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

pub fn init_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = env_logger::builder().is_test(true).try_init();
    });
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The bytes of `tests/fixtures/{name}`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The real signed request (fixture 18) and its signature header.
pub fn signed_capture() -> (Vec<u8>, String) {
    let signature = String::from_utf8(fixture("18-signed-real-capture.sig")).unwrap();
    (
        fixture("18-signed-real-capture.form"),
        signature.trim().to_owned(),
    )
}

/// A buffer the in-process server writes its event lines to.
#[derive(Clone, Default)]
pub struct Lines {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// The sink writing here, to wait for its queue.
    sink: Arc<std::sync::OnceLock<EventSink>>,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Every line written so far, once the sink's queue is written out.
    pub fn all(&self) -> Vec<String> {
        if let Some(sink) = self.sink.get() {
            assert!(
                sink.wait_written(Duration::from_secs(5)),
                "event lines stuck in the queue"
            );
        }
        String::from_utf8(self.buffer.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A server running in this process on 127.0.0.1:0, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub lines: Lines,
    stopper: Stopper,
    /// Held for the test's life, as `main` holds it: it owns the channel the server's
    /// watchers report failures on.
    _server: Server,
}

impl TestServer {
    /// The app configured by `vars` (as environment variables would be), verification on
    /// unless `SKIP_SIGNATURE_VERIFICATION` says otherwise.
    pub fn start(vars: &[(&str, &str)]) -> TestServer {
        let config = config(vars);
        let verifier = (!config.skip_signature_verification).then(Verifier::sipgate);
        let app = App::new(&config, verifier);
        TestServer::with_handler(
            &config,
            Arc::new(move |request: &Incoming<'_>| app.route(request)),
        )
    }

    /// Verification off: most tests send unsigned fixtures.
    pub fn unsigned() -> TestServer {
        TestServer::start(&[("SKIP_SIGNATURE_VERIFICATION", "true")])
    }

    pub fn with_handler(
        config: &Config,
        handler: Arc<dyn Fn(&Incoming<'_>) -> Reply + Send + Sync>,
    ) -> TestServer {
        init_log();
        let lines = Lines::default();
        let options = ServerOptions {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            ..ServerOptions::new(config)
        };
        let sink = EventSink::new(lines.clone(), config.event_format);
        lines.sink.set(sink.clone()).ok().expect("a fresh buffer");
        let server = Server::start(&options, handler, sink).unwrap();
        TestServer {
            addr: server.local_addr(),
            lines,
            stopper: server.stopper(),
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a body with the given headers; `Content-Type` is the form type unless
    /// `headers` name another.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let mut all = headers.to_vec();
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
        {
            all.push(("Content-Type", FORM));
        }
        request(&self.url(path), "POST", body, &all)
    }

    /// POSTs a form body without a signature.
    pub fn post_form(&self, path: &str, body: &[u8]) -> Answer {
        self.post(path, body, &[])
    }

    pub fn get(&self, path: &str) -> Answer {
        request(&self.url(path), "GET", b"", &[])
    }
}

impl Drop for TestServer {
    /// Stops without waiting: the workers end on their own a moment later.
    fn drop(&mut self) {
        self.stopper.stop();
    }
}

pub fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .unwrap()
}

/// A complete HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// One request through a real HTTP client.
pub fn request(url: &str, method: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.to_vec()).unwrap();
    let mut response = agent()
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    Answer {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// Writes `bytes` on a fresh connection, half-closes it, and returns everything the
/// server sends until it closes or `wait` passes. A server may answer and close before it
/// has read everything (a 413, say): a failed write is no error then; the answer decides.
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    read_until_closed(&mut stream, wait)
}

pub fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> String {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    String::from_utf8_lossy(&received).into_owned()
}

/// The status codes of every response in `text`, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(at, _)| text[at..].split(' ').nth(1)?.parse().ok())
        .collect()
}

/// The binary, started with `vars` on 127.0.0.1:0 in `dir` (so no stray .env is read).
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_lines: Arc<Mutex<Vec<String>>>,
    stdout: Option<std::process::ChildStdout>,
}

pub fn binary_command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sipgateio-callevents"));
    command.current_dir(dir);
    // The developer's own settings must not leak into a test.
    for variable in sipgateio_callevents::config::VARIABLES {
        command.env_remove(variable.name);
    }
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// A loopback port nobody listens on right now (another process may take it later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary to completion in `dir`: (exit code, stdout, stderr).
pub fn run_binary(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let output = binary_command(dir, vars)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

impl Binary {
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Binary {
        let mut child = binary_command(dir, vars)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_sender, addr_receiver) = std::sync::mpsc::channel();
        let collected = Arc::clone(&stderr_lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest
                        .split(' ')
                        .next()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap();
                    let _ = addr_sender.send(addr);
                }
                collected.lock().unwrap().push(line);
            }
        });
        let addr = addr_receiver
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "the binary did not start: {:?}",
                    stderr_lines.lock().unwrap()
                )
            });
        let stdout = child.stdout.take();
        Binary {
            child,
            addr,
            stderr_lines,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; kills it and fails the test otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the server did not exit within {limit:?}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the process wrote to stdout (call after it exited).
    pub fn stdout(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            stdout.read_to_string(&mut text).unwrap();
        }
        text
    }

    /// Reads stdout on a thread as it comes, so a chatty server never blocks on a full
    /// pipe; the thread returns the number of lines once the process has exited.
    pub fn drain_stdout(&mut self) -> thread::JoinHandle<usize> {
        let stdout = self.stdout.take().expect("stdout not taken yet");
        thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).count())
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
