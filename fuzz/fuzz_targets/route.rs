//! `app::App::route` with arbitrary method, path, Content-Type, signature and body, with
//! verification on and off, at the root and under a path prefix.
//!
//! Input: one flag byte, then `path \n content-type \n signature \n body` (missing pieces
//! are empty). Flag bits: 0–1 the method (GET, HEAD, POST, other), 2 verification on,
//! 3 the app under `/hooks/abc`, 4 a Content-Type header is sent, 5 a signature header is sent.
//!
//! Properties: only the documented statuses; an event is reported exactly when a POST is
//! answered 200, and then it is the route's kind, came with a form Content-Type and (with
//! verification on) with sipgate's real signature; 405 always carries `Allow`.
#![no_main]

use std::sync::LazyLock;
use std::time::{Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::config::Config;
use sipgateio_callevents::event::EventKind;
use sipgateio_callevents::app::App;
use sipgateio_callevents::exchange::{ContentType, Incoming, Method};

const SIGNED_BODY: &[u8] = include_bytes!("../../tests/fixtures/18-signed-real-capture.form");

struct Variant {
    app: App,
    prefix: &'static str,
    verifying: bool,
}

fn variant(url: &str, prefix: &'static str, verifying: bool) -> Variant {
    let config = Config::from_lookup(|name| match name {
        "WEBHOOK_URL" => Some(url.to_owned()),
        "SKIP_SIGNATURE_VERIFICATION" => Some((!verifying).to_string()),
        _ => None,
    })
    .expect("a valid test configuration");
    Variant {
        app: App::from_config(&config).expect("no key or rules file to read"),
        prefix,
        verifying,
    }
}

static VARIANTS: LazyLock<[Variant; 4]> = LazyLock::new(|| {
    let root = "http://localhost:8080";
    let prefixed = "https://h.example/hooks/abc?t=1&u=2";
    [
        variant(root, "", false),
        variant(root, "", true),
        variant(prefixed, "/hooks/abc", false),
        variant(prefixed, "/hooks/abc", true),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut pieces = rest.splitn(4, |&b| b == b'\n');
    let path = String::from_utf8_lossy(pieces.next().unwrap_or_default());
    let content_type = String::from_utf8_lossy(pieces.next().unwrap_or_default());
    let signature = String::from_utf8_lossy(pieces.next().unwrap_or_default());
    let body = pieces.next().unwrap_or_default();

    let method = [Method::Get, Method::Head, Method::Post, Method::Other][usize::from(flags & 3)];
    let variant = &VARIANTS[usize::from((flags >> 2) & 1) + 2 * usize::from((flags >> 3) & 1)];
    let incoming = Incoming {
        method,
        path: &path,
        query: None,
        host: None,
        forwarded_host: None,
        content_type: (flags & 0x10 != 0).then_some(content_type.as_ref()),
        signature: (flags & 0x20 != 0).then_some(signature.as_ref()),
        body,
        received: Instant::now(),
        received_utc: SystemTime::now(),
    };
    let reply = variant.app.route(&incoming);

    assert!(
        matches!(reply.status, 200 | 400 | 403 | 404 | 405 | 415),
        "undocumented status {}",
        reply.status
    );
    assert_eq!(reply.status == 405, reply.allow.is_some());
    assert_eq!(
        reply.accepted.is_some(),
        reply.status == 200 && method == Method::Post,
        "{reply:?}"
    );
    let Some(route) = path.strip_prefix(variant.prefix) else {
        assert_eq!(reply.status, 404);
        return;
    };
    if reply.status == 200 && method != Method::Post {
        assert_eq!((route, &*reply.body), ("/health", "ok"));
    }
    if let Some(accepted) = &reply.accepted {
        let event = &accepted.event;
        let kind = match route {
            "/new-call" => EventKind::NewCall,
            "/on-answer" => EventKind::Answer,
            "/on-hangup" => EventKind::Hangup,
            "/on-dtmf" => EventKind::Dtmf,
            other => panic!("an event accepted on {other:?}"),
        };
        assert_eq!(event.kind(), kind);
        assert_eq!(
            reply.content_type == ContentType::Xml,
            kind == EventKind::NewCall
        );
        let media_type = incoming.content_type.unwrap().split(';').next().unwrap();
        assert!(
            media_type
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        );
        if variant.verifying {
            assert_eq!(
                body, SIGNED_BODY,
                "an unsigned event got through verification"
            );
        }
    }
});
