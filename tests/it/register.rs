//! `register` and `REGISTER_ON_START` against a stand-in of sipgate's REST API on the
//! loopback, which checks what sipgate's own Node library sends: the method, the path, the
//! token's Basic authorization, the JSON body with the account's other settings kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const TOKEN_ID: &str = "token-AB12CD";
const TOKEN: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// base64("token-AB12CD:7c9e6679-7425-40de-944b-e07fc1f90ae7")
const AUTHORIZATION: &str =
    "Basic dG9rZW4tQUIxMkNEOjdjOWU2Njc5LTc0MjUtNDBkZS05NDRiLWUwN2ZjMWY5MGFlNw==";
const WEBHOOK_URL: &str = "https://calls.example.com/hooks?t=1";
const NEW_CALL_URL: &str = "https://calls.example.com/hooks/new-call?t=1";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Like sipgate: the settings on GET, 200 on PUT.
    Sipgate,
    /// 401 for everything.
    WrongToken,
    /// Takes the request and never answers.
    Silent,
}

struct StandIn {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    fn start(behaviour: Behaviour) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v2", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&received);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&record);
                thread::spawn(move || serve(stream, behaviour, &record));
            }
        });
        StandIn { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The account's settings before: an incoming URL set, none for outgoing calls, and the
/// fields register must keep.
fn settings_before() -> Value {
    json!({
        "incomingUrl": "https://old.example.com/in",
        "outgoingUrl": "",
        "log": true,
        "whitelist": ["p0", "g1"]
    })
}

fn serve(stream: TcpStream, behaviour: Behaviour, record: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let (mut length, mut authorization, mut content_type) = (0, None, None);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            let value = value.trim().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap(),
                "authorization" => authorization = Some(value),
                "content-type" => content_type = Some(value),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        record.lock().unwrap().push(Received {
            method: method.clone(),
            path,
            authorization,
            content_type,
            body: String::from_utf8(body).unwrap(),
        });
        let (status, body) = match (behaviour, method.as_str()) {
            (Behaviour::Silent, _) => {
                thread::sleep(Duration::from_secs(30));
                return;
            }
            (Behaviour::WrongToken, _) => (401, String::new()),
            (Behaviour::Sipgate, "GET") => (200, settings_before().to_string()),
            (Behaviour::Sipgate, _) => (200, String::new()),
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn register(api: &StandIn, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["register"];
    all.extend_from_slice(args);
    run_binary(
        &temp_dir("register"),
        &[
            ("WEBHOOK_URL", WEBHOOK_URL),
            ("SIPGATE_API_URL", &api.url),
            ("SIPGATE_TOKEN_ID", TOKEN_ID),
            ("SIPGATE_TOKEN", TOKEN),
        ],
        &all,
    )
}

fn assert_no_token(output: &str) {
    assert!(!output.contains(TOKEN), "the token is shown: {output}");
    assert!(
        !output.contains(AUTHORIZATION),
        "the authorization is shown: {output}"
    );
}

#[test]
fn both_urls_are_set_and_the_other_settings_kept() {
    let api = StandIn::start(Behaviour::Sipgate);
    let (code, stdout, stderr) = register(&api, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "incoming URL: https://old.example.com/in -> {NEW_CALL_URL}\noutgoing URL: (none) -> {NEW_CALL_URL}\n"
        )
    );
    assert_no_token(&format!("{stdout}{stderr}"));
    let received = api.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let (get, put) = (&received[0], &received[1]);
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        ("GET", "/v2/settings/sipgateio")
    );
    assert_eq!(
        (put.method.as_str(), put.path.as_str()),
        ("PUT", "/v2/settings/sipgateio")
    );
    for request in &received {
        assert_eq!(request.authorization.as_deref(), Some(AUTHORIZATION));
    }
    assert_eq!(put.content_type.as_deref(), Some("application/json"));
    let sent: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "incomingUrl": NEW_CALL_URL,
            "outgoingUrl": NEW_CALL_URL,
            "log": true,
            "whitelist": ["p0", "g1"]
        })
    );
}

#[test]
fn incoming_alone_leaves_the_outgoing_url() {
    let api = StandIn::start(Behaviour::Sipgate);
    let (code, stdout, stderr) = register(&api, &["--incoming"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.ends_with("outgoing URL: (none) -> (none)\n"),
        "{stdout}"
    );
    let received = api.received();
    let sent: Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(sent["incomingUrl"], NEW_CALL_URL);
    assert_eq!(sent["outgoingUrl"], "");
    assert_eq!(sent["whitelist"], json!(["p0", "g1"]));
}

#[test]
fn a_wrong_token_and_a_silent_api_are_one_line_each() {
    let api = StandIn::start(Behaviour::WrongToken);
    let (code, stdout, stderr) = register(&api, &[]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sipgateio-callevents: error: sipgate refused the token (GET ")
            && stderr.contains(": 401): check SIPGATE_TOKEN_ID and SIPGATE_TOKEN"),
        "{stderr}"
    );
    assert_no_token(&stderr);
    assert_eq!(api.received().len(), 1, "nothing is put after a refusal");

    let silent = StandIn::start(Behaviour::Silent);
    let (code, _, stderr) = register(&silent, &["--outgoing"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no answer from http://127.0.0.1:") && stderr.contains("within 10 s"),
        "{stderr}"
    );
    assert_no_token(&stderr);
}

#[test]
fn settings_that_cannot_register_exit_2_without_asking_sipgate() {
    let api = StandIn::start(Behaviour::Sipgate);
    let dir = temp_dir("register-settings");
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("WEBHOOK_URL", WEBHOOK_URL)],
            "register needs a personal access token of the sipgate account",
        ),
        (
            &[
                ("SIPGATE_TOKEN_ID", TOKEN_ID),
                ("SIPGATE_TOKEN", TOKEN),
                ("WEBHOOK_URL", "http://localhost:8080"),
            ],
            "WEBHOOK_URL is http://localhost:8080, which sipgate cannot reach",
        ),
        (
            &[
                ("SIPGATE_TOKEN_ID", TOKEN_ID),
                ("SIPGATE_TOKEN", "not-a-uuid"),
                ("WEBHOOK_URL", WEBHOOK_URL),
            ],
            "invalid SIPGATE_TOKEN \"(not shown)\": expected the personal access token itself",
        ),
        (
            &[
                ("SIPGATE_TOKEN_ID", TOKEN_ID),
                ("SIPGATE_TOKEN", TOKEN),
                ("WEBHOOK_URL", WEBHOOK_URL),
                ("SIPGATE_API_URL", "http://api.example.com/v2"),
            ],
            "invalid SIPGATE_API_URL \"http://api.example.com/v2\": expected an https:// URL",
        ),
    ];
    for (vars, message) in cases {
        let mut vars = vars.to_vec();
        if !vars.iter().any(|(name, _)| *name == "SIPGATE_API_URL") {
            vars.push(("SIPGATE_API_URL", &api.url));
        }
        let (code, stdout, stderr) = run_binary(&dir, &vars, &["register"]);
        assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
        assert!(
            stderr.starts_with(&format!("sipgateio-callevents: error: {message}")),
            "{stderr}"
        );
        assert_no_token(&stderr);
    }
    assert!(api.received().is_empty());
}

/// With REGISTER_ON_START the server registers as it starts; when sipgate refuses, it says
/// so in the log and serves on.
#[test]
fn the_server_registers_at_start_and_serves_on_when_refused() {
    for (behaviour, expected) in [
        (
            Behaviour::Sipgate,
            format!("REGISTER_ON_START: sipgate.io URLs set; incoming URL: https://old.example.com/in -> {NEW_CALL_URL}"),
        ),
        (
            Behaviour::WrongToken,
            "REGISTER_ON_START: the sipgate.io URLs were not set, the server serves on: sipgate refused the token".to_owned(),
        ),
    ] {
        let api = StandIn::start(behaviour);
        let mut server = Binary::start(
            &temp_dir("register-on-start"),
            &[
                ("WEBHOOK_URL", WEBHOOK_URL),
                ("SIPGATE_API_URL", &api.url),
                ("SIPGATE_TOKEN_ID", TOKEN_ID),
                ("SIPGATE_TOKEN", TOKEN),
                ("REGISTER_ON_START", "true"),
            ],
        );
        let log = server.wait_for_stderr(Duration::from_secs(5), |lines| {
            lines.iter().any(|line| line.contains("REGISTER_ON_START"))
        });
        assert!(
            log.iter().any(|line| line.contains(&expected)),
            "{expected}: {log:#?}"
        );
        assert_eq!(get(&server.url("/hooks/health")).status, 200);
        let (_, stderr) = server.stop_cleanly();
        assert_no_token(&stderr);
    }
}
