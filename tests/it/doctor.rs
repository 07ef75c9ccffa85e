//! `doctor` against the real binary behind a real TLS proxy (nginx on the loopback), with
//! a throwaway CA that the check trusts through `SSL_CERT_FILE`, as a public CA would be
//! trusted; then the ways it must fail: a self-signed certificate, plain http, a URL that
//! reaches another server, a URL nothing answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// nginx and openssl, or `None` (after saying so) outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let nginx = Some(PathBuf::from("/usr/sbin/nginx"))
        .filter(|path| path.is_file())
        .or_else(|| find_on_path("nginx"));
    let openssl = find_on_path("openssl");
    match (nginx, openssl) {
        (Some(nginx), Some(openssl)) => Some((nginx, openssl)),
        _ => {
            assert!(!in_ci(), "doctor's tests need nginx and openssl in CI");
            skipped("doctor's TLS tests need nginx and openssl");
            None
        }
    }
}

fn openssl(openssl: &Path, dir: &Path, args: &[&str]) {
    let output = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.pem`) and a certificate it signed for localhost (`cert.pem`, `key.pem`).
fn certificate_from_a_ca(tool: &Path, dir: &Path) {
    openssl(
        tool,
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=doctor test CA",
        ],
    );
    openssl(
        tool,
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        tool,
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// A certificate for localhost that signed itself.
fn self_signed(tool: &Path, dir: &Path) {
    openssl(
        tool,
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
}

/// nginx terminating TLS on a free loopback port with `dir`'s cert.pem and key.pem,
/// passing everything to `upstream`; killed on drop.
struct TlsProxy {
    port: u16,
    child: Child,
}

impl TlsProxy {
    fn start(nginx: &Path, dir: &Path, upstream: u16) -> TlsProxy {
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             \x20   location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n      proxy_http_version 1.1;\n      proxy_set_header Host $host;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start: {}", {
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsProxy { port, child }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server on `port`, with `WEBHOOK_URL` and the signature check on.
fn server_on(port: u16, webhook_url: &str) -> Binary {
    Binary::start(
        &temp_dir("doctor-server"),
        &[
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("WEBHOOK_URL", webhook_url),
        ],
    )
}

/// A server behind the TLS proxy with `dir`'s certificate, its WEBHOOK_URL the proxy's
/// `https://localhost:PORT` and `path`: (the proxy, the server, its port, the URL).
fn behind_tls_proxy(nginx: &Path, dir: &Path, path: &str) -> (TlsProxy, Binary, u16, String) {
    // The proxy's port must be known before the server starts, for its WEBHOOK_URL.
    let upstream = free_port();
    let proxy = TlsProxy::start(nginx, dir, upstream);
    let url = format!("https://localhost:{}{path}", proxy.port);
    let server = server_on(upstream, &url);
    (proxy, server, upstream, url)
}

/// `doctor` with the server's settings: (exit code, stdout, stderr).
fn doctor(listen_port: u16, webhook_url: &str, ca: Option<&Path>) -> (i32, String, String) {
    let listen = format!("127.0.0.1:{listen_port}");
    let ca = ca.map(|path| path.to_str().unwrap().to_owned());
    let mut vars = vec![
        ("LISTEN_ADDR", listen.as_str()),
        ("WEBHOOK_URL", webhook_url),
    ];
    if let Some(ca) = &ca {
        vars.push(("SSL_CERT_FILE", ca.as_str()));
    }
    run_binary(&temp_dir("doctor"), &vars, &["doctor"])
}

#[test]
fn every_check_passes_behind_a_tls_proxy_with_a_trusted_certificate() {
    let Some((nginx, tool)) = tools() else {
        return;
    };
    let dir = temp_dir("doctor-trusted");
    certificate_from_a_ca(&tool, &dir);
    let (proxy, mut server, upstream, url) = behind_tls_proxy(&nginx, &dir, "/hooks");
    let (code, stdout, stderr) = doctor(upstream, &url, Some(&dir.join("ca.pem")));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains('✗'), "{stdout}");
    for expected in [
        "✓ the signature check is on",
        &format!("✓ WEBHOOK_URL {url} is https"),
        "! WEBHOOK_URL's host is this machine",
        &format!("✓ {url}/health?instance reaches this server from the outside, in "),
        &format!("✓ POST {url}/new-call without a signature is refused with 403"),
        &format!("sipgate can reach this server at {url}"),
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }

    // The same proxy without trusting the test CA: as sipgate would see a private CA.
    let (code, stdout, _) = doctor(upstream, &url, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("its certificate is not one a public client trusts"),
        "{stdout}"
    );
    assert!(server.stop().success());
    drop(proxy);
}

#[test]
fn a_self_signed_certificate_fails_with_the_fix() {
    let Some((nginx, tool)) = tools() else {
        return;
    };
    let dir = temp_dir("doctor-self-signed");
    self_signed(&tool, &dir);
    let (_proxy, mut server, upstream, url) = behind_tls_proxy(&nginx, &dir, "");
    let (code, stdout, stderr) = doctor(upstream, &url, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "✗ {url}/health?instance: its certificate is not one a public client trusts"
        )) && stdout.contains("use a tunnel's https URL, or a certificate from a public CA"),
        "{stdout}"
    );
    assert!(
        stderr.contains("check(s) failed; sipgate cannot deliver calls yet"),
        "{stderr}"
    );
    assert!(server.stop().success());
}

#[test]
fn plain_http_another_server_and_nothing_answering_fail_with_the_fix() {
    // Plain http to the server itself: reached, but not https.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = server_on(port, &url);
    let (code, stdout, _) = doctor(port, &url, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("✗ WEBHOOK_URL {url} is plain http"))
            && stdout.contains("use the https:// URL of your tunnel or TLS proxy"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("✓ {url}/health?instance reaches this server")),
        "{stdout}"
    );

    // A URL that reaches another process of this program.
    let other_port = free_port();
    let mut other = server_on(other_port, "http://localhost:1");
    let elsewhere = format!("http://127.0.0.1:{other_port}");
    let (code, stdout, _) = doctor(port, &elsewhere, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("reaches another sipgateio-callevents process (instance ")
            && stdout.contains(&format!("not the one on 127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(other.stop().success());

    // A URL nothing answers.
    let nobody = format!("https://127.0.0.1:{}", free_port());
    let (code, stdout, _) = doctor(port, &nobody, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("✗ {nobody}/health?instance: no answer"))
            && stdout.contains("is the tunnel or proxy running"),
        "{stdout}"
    );
    assert!(server.stop().success());

    // No server on this machine at all.
    let (code, stdout, _) = doctor(port, &url, None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("no server of this program answers at")
            && stdout.contains("start it with the same settings"),
        "{stdout}"
    );
}
