//! The binary, run as a child process the way a user runs it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// The binary's command, to run in `dir` on 127.0.0.1:0 with only `vars` of its settings.
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

/// The binary running as a child process, at the address it logged; killed on drop.
pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: thread::JoinHandle<()>,
    stdout: Option<ChildStdout>,
}

impl Binary {
    /// The binary, started with `vars` on 127.0.0.1:0 in `dir` (so no stray .env is read),
    /// its stdout piped here.
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Binary {
        Binary::spawn(binary_command(dir, vars).stdout(Stdio::piped()))
    }

    /// Spawns `command` (the binary, or a shell that execs it) with stdin closed and its
    /// stderr collected, and waits for the address it logs. Its stdout is as `command`
    /// sets it; when piped, it stays unread until [`Binary::stdout`] or
    /// [`Binary::drain_stdout`] reads it.
    pub fn spawn(command: &mut Command) -> Binary {
        let mut child = command
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_sender, addr_receiver) = mpsc::channel();
        let collected = Arc::clone(&lines);
        let stderr_reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split(' ').next().unwrap().parse::<SocketAddr>();
                    let _ = addr_sender.send(addr.unwrap());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = addr_receiver.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary did not start: {:?}", lines.lock().unwrap());
        };
        let stdout = child.stdout.take();
        Binary {
            child,
            addr,
            stderr: lines,
            stderr_reader,
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

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits up to `limit` for the process to exit, and then for the last of its stderr;
    /// kills it and fails the test if it does not exit.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "the server did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let took = started.elapsed();
        // The pipe ends with the process; a line may still be on its way to the reader.
        let read_by = Instant::now() + Duration::from_secs(2);
        while !self.stderr_reader.is_finished() && Instant::now() < read_by {
            thread::sleep(Duration::from_millis(5));
        }
        (status, took)
    }

    /// Stops the process as a supervisor would (SIGTERM) and waits up to 10 s for it.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(10)).0
    }

    /// [`Binary::stop`], which must end in exit 0; then everything the process wrote:
    /// (stdout, stderr).
    pub fn stop_cleanly(&mut self) -> (String, String) {
        let status = self.stop();
        assert!(status.success(), "{status}: {}", self.stderr());
        (self.stdout(), self.stderr())
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

    /// Closes the read end of the stdout pipe: every write the process makes to it fails
    /// from then on (EPIPE).
    pub fn close_stdout(&mut self) {
        drop(self.stdout.take().expect("stdout piped and not taken yet"));
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// The stderr lines once `enough` holds for them, or when `wait` has passed.
    pub fn wait_for_stderr(
        &self,
        wait: Duration,
        enough: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            let lines = self.stderr_lines();
            if enough(&lines) || Instant::now() >= deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
