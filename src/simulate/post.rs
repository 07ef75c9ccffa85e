//! One event posted the way sipgate posts it: the request and the answer printed, the
//! answer checked, and a message that names the fix when the server refused or could not
//! be reached.

use std::io::{self, Write};
use std::time::Duration;

use super::Error;
use super::args::server_default_url;
use super::check::check_response;
use crate::answer::Response;
use crate::event::{Direction, EventKind};
use crate::output::Printable;

/// sipgate gives up on an answer after ten seconds (sipgate staff in
/// https://github.com/sipgate/sipgate.io/issues/32).
const TIMEOUT: Duration = Duration::from_secs(10);
/// All real answers are a few hundred bytes; this only stops a runaway server.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Lines of an answer body shown in the transcript.
const MAX_SHOWN_LINES: usize = 30;

/// The HTTP client: sipgate's headers, no proxy (sipgate reaches the server directly, and
/// a proxy from the environment would not know localhost), sipgate's ten-second limit, and
/// redirects shown rather than followed, as sipgate is not known to follow them.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .user_agent("sipgate.io")
        .accept("application/xml, text/plain, text/html")
        .build()
        .into()
}

/// What a server answered.
pub(crate) struct Answer {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    pub(crate) body: String,
}

pub(crate) fn print_failed(error: io::Error) -> Error {
    Error::call(format!("cannot write to stdout: {error}"))
}

/// A request of the call, as its messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    NewCall,
    /// Digits for a menu: `menu` 1 is the newCall answer's `<Gather>`, 2 the one in the
    /// answer to those digits, and so on.
    Dtmf {
        menu: usize,
    },
    Answer,
    Hangup,
}

impl Step {
    fn event(self) -> EventKind {
        match self {
            Step::NewCall => EventKind::NewCall,
            Step::Dtmf { .. } => EventKind::Dtmf,
            Step::Answer => EventKind::Answer,
            Step::Hangup => EventKind::Hangup,
        }
    }

    fn wire_name(self) -> &'static str {
        self.event().wire_name()
    }
}

/// Where the URL of a request came from, for the messages.
fn source(step: Step) -> &'static str {
    match step {
        Step::NewCall => "URL",
        Step::Answer => "the onAnswer URL of the server's newCall answer",
        Step::Hangup => "the onHangup URL of the server's newCall answer",
        Step::Dtmf { menu: ..=1 } => "the <Gather onData> URL of the server's newCall answer",
        Step::Dtmf { .. } => "the <Gather onData> URL of the server's answer to the digits",
    }
}

/// The simulator can only follow http URLs; an https one in the server's XML usually means
/// WEBHOOK_URL is set to the public address, which the simulator cannot (and need not) use.
pub(crate) fn followable(step: Step, url: &str) -> Result<&str, Error> {
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err(Error::call(format!(
            "cannot follow {} {url:?}: the simulator speaks plain http only; for a local test start the server without WEBHOOK_URL (it defaults to {default_url}) or with an http:// one",
            source(step),
            default_url = server_default_url()
        )));
    }
    Ok(url)
}

/// POSTs one event like sipgate and prints the request and the answer.
pub(crate) fn post(
    agent: &ureq::Agent,
    out: &mut dyn Write,
    step: Step,
    url: &str,
    body: &str,
) -> Result<Answer, Error> {
    let printed = print_failed;
    writeln!(out, "> POST {url}").map_err(printed)?;
    for (name, value) in form_urlencoded::parse(body.as_bytes()) {
        writeln!(out, ">   {name} = {}", Printable(&value)).map_err(printed)?;
    }
    out.flush().map_err(printed)?;

    let result = agent
        .post(url)
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .header("Accept-Charset", "utf-8")
        .header("Accept-Encoding", "gzip,deflate")
        .send(body);
    let mut response = match result {
        Ok(response) => response,
        Err(error) => return Err(Error::call(unreachable_message(step, url, &error))),
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let content_encoding = header("content-encoding");
    let status = response.status();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|error| {
            Error::call(format!(
                "could not read the server's answer to {} at {url}: {error}; sipgate needs a complete answer of a few hundred bytes",
                step.wire_name()
            ))
        })?;
    let body = String::from_utf8_lossy(&bytes).into_owned();

    let mut status_line = format!(
        "< {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if let Some(content_type) = &content_type {
        status_line.push_str(&format!(" ({content_type})"));
    }
    writeln!(out, "{}", status_line.trim_end()).map_err(printed)?;
    if body.trim().is_empty() {
        writeln!(out, "<   (empty body)").map_err(printed)?;
    }
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    // An error page can be long; its start says what it is.
    for line in lines.iter().take(MAX_SHOWN_LINES) {
        writeln!(out, "<   {}", Printable(line)).map_err(printed)?;
    }
    if lines.len() > MAX_SHOWN_LINES {
        writeln!(out, "<   (… {} more lines)", lines.len() - MAX_SHOWN_LINES).map_err(printed)?;
    }
    writeln!(out).map_err(printed)?;

    let answer = Answer {
        status: status.as_u16(),
        content_type,
        content_encoding,
        body,
    };
    if !(200..300).contains(&answer.status) {
        return Err(Error::call(refusal_message(step, url, &answer)));
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Error::call(format!(
            "the server's answer to {} is not UTF-8; send XML in UTF-8",
            step.wire_name()
        )));
    }
    Ok(answer)
}

fn unreachable_message(step: Step, url: &str, error: &ureq::Error) -> String {
    let what = match step {
        Step::NewCall => format!("at {url}"),
        _ => format!("at {url} ({})", source(step)),
    };
    let start = format!(
        "start one in another terminal with `SKIP_SIGNATURE_VERIFICATION=true cargo run --release` (or `SKIP_SIGNATURE_VERIFICATION=true sipgateio-callevents`), or pass its URL: sipgateio-callevents simulate http://HOST:PORT; the default is {default_url}",
        default_url = server_default_url()
    );
    let follow_up_hint = match step {
        Step::NewCall => start,
        _ => "the server's WEBHOOK_URL must be an address at which it can be reached".into(),
    };
    match error {
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            format!("no server is listening {what} (connection refused); {follow_up_hint}")
        }
        ureq::Error::ConnectionFailed => {
            format!("could not connect {what}; {follow_up_hint}")
        }
        ureq::Error::HostNotFound => format!(
            "the host of {url} is not found ({}); check the host name",
            source(step)
        ),
        ureq::Error::Timeout(_) => format!(
            "no complete answer to {} {what} within {} s; sipgate gives up then and puts the call through without the server's XML: answer faster and close the response",
            step.wire_name(),
            TIMEOUT.as_secs()
        ),
        other => format!("the {} request {what} failed: {other}", step.wire_name()),
    }
}

fn refusal_message(step: Step, url: &str, answer: &Answer) -> String {
    let said = match answer.body.trim() {
        "" => String::new(),
        body => format!(
            " (the server said {:?})",
            Printable(&body.chars().take(200).collect::<String>()).to_string()
        ),
    };
    let status = answer.status;
    let event = step.wire_name();
    let advice = match status {
        403 => "signature verification is on, and the simulator cannot sign its requests (only sipgate has the private key); start the server with SKIP_SIGNATURE_VERIFICATION=true for local testing".to_owned(),
        404 => match step {
            Step::NewCall => "no route at that path; if the server's WEBHOOK_URL has a path, add it to URL, e.g. simulate http://localhost:8080/PATH".to_owned(),
            _ => format!("the URL came from {}, so it does not match the server's own routes; check WEBHOOK_URL", source(step)),
        },
        400 | 415 => "the server does not accept sipgate's own request format; this is a bug in the server".to_owned(),
        413 => "the body is larger than the server allows; raise MAX_BODY_BYTES".to_owned(),
        300..=399 => "sipgate is not known to follow redirects; give sipgate the final URL".to_owned(),
        _ => "sipgate treats any answer but 2xx as a failed push and puts the call through with the account's settings".to_owned(),
    };
    format!("the server refused the {event} at {url} with {status}{said}: {advice}")
}

/// A newCall or dtmf answer: sipgate reads it, so it must be XML it accepts.
pub(crate) fn check_xml_answer(
    step: Step,
    url: &str,
    answer: &Answer,
    direction: Direction,
) -> Result<Response, Error> {
    let event = step.wire_name();
    if let Some(encoding) = answer
        .content_encoding
        .as_deref()
        .filter(|encoding| !encoding.eq_ignore_ascii_case("identity"))
    {
        return Err(Error::call(format!(
            "the server's answer to {event} is compressed (Content-Encoding: {encoding}); sipgate asks for gzip but is not known to decode it: send it uncompressed"
        )));
    }
    let media_type = answer.content_type.as_deref().map(|value| {
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if !matches!(media_type.as_deref(), Some("application/xml" | "text/xml")) {
        return Err(Error::call(format!(
            "the server answered {event} at {url} with Content-Type {:?}; sipgate ignores answers that are not application/xml (or text/xml)",
            answer.content_type.as_deref().unwrap_or("(none)")
        )));
    }
    check_response(&answer.body, direction).map_err(|problem| {
        Error::call(format!(
            "the server's answer to {event} at {url} is not valid sipgate XML: {problem}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_do() {
        let answer = |status: u16, body: &str| Answer {
            status,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: body.into(),
        };
        let message = refusal_message(
            Step::NewCall,
            "http://l/new-call",
            &answer(403, "forbidden: no signature"),
        );
        assert!(
            message.contains("with 403 (the server said \"forbidden: no signature\")"),
            "{message}"
        );
        assert!(
            message.contains("start the server with SKIP_SIGNATURE_VERIFICATION=true"),
            "{message}"
        );
        let message = refusal_message(Step::NewCall, "http://l/new-call", &answer(404, ""));
        assert!(message.contains("add it to URL"), "{message}");
        let message = refusal_message(Step::Answer, "http://l/on-answer", &answer(500, ""));
        assert!(message.contains("failed push"), "{message}");

        let error = check_xml_answer(
            Step::NewCall,
            "http://l/new-call",
            &answer(200, "<Response/>"),
            Direction::In,
        )
        .unwrap_err();
        assert!(
            error.message.contains("Content-Type \"text/plain\""),
            "{error}"
        );
        assert_eq!(error.exit_code(), 1);
        let xml = Answer {
            content_type: Some("text/xml; charset=utf-8".into()),
            ..answer(200, "<Response/>")
        };
        assert!(check_xml_answer(Step::NewCall, "u", &xml, Direction::In).is_ok());
        let gzipped = Answer {
            content_encoding: Some("gzip".into()),
            ..xml
        };
        let error = check_xml_answer(Step::NewCall, "u", &gzipped, Direction::In).unwrap_err();
        assert!(error.message.contains("compressed"), "{error}");
    }

    #[test]
    fn https_follow_ups_are_refused_with_the_fix() {
        let error = followable(Step::Answer, "https://public.example/on-answer").unwrap_err();
        assert!(
            error
                .message
                .contains("start the server without WEBHOOK_URL"),
            "{error}"
        );
        assert_eq!(
            followable(Step::Answer, "http://l/on-answer").unwrap(),
            "http://l/on-answer"
        );
        let error = followable(Step::Dtmf { menu: 2 }, "https://p.example/on-dtmf").unwrap_err();
        assert!(
            error.message.contains(
                "cannot follow the <Gather onData> URL of the server's answer to the digits"
            ),
            "{error}"
        );
    }
}
