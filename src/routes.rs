//! The routes, relative to `WEBHOOK_URL`'s path prefix, and the answer that subscribes a
//! call to the routes of its follow-up events.

use crate::answer::{Response, Url};
use crate::config::WebhookUrl;

pub const NEW_CALL: &str = "/new-call";
pub const ON_ANSWER: &str = "/on-answer";
pub const ON_HANGUP: &str = "/on-hangup";
pub const ON_DTMF: &str = "/on-dtmf";
pub const HEALTH: &str = "/health";
pub const METRICS: &str = "/metrics";

/// The answer that only subscribes to the call's answer and hangup events, at
/// `WEBHOOK_URL`'s routes: every newCall's answer without rules, and the start of every
/// answer with them.
pub fn subscription(webhook: &WebhookUrl) -> Response {
    let url = |route| Url::new(&webhook.callback(route)).expect("WEBHOOK_URL is an absolute URL");
    Response::new()
        .on_answer(url(ON_ANSWER))
        .on_hangup(url(ON_HANGUP))
}
