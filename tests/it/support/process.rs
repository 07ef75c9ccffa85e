//! The binary, run as a child process the way a user runs it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
