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

/// Every route, for the check of `WEBHOOK_URL`.
const ALL: [&str; 6] = [NEW_CALL, ON_ANSWER, ON_HANGUP, ON_DTMF, HEALTH, METRICS];

/// `WEBHOOK_URL` is the base the routes are added to. One that ends in a route (copied
/// from the sipgate console, say) would make the server wait at `…/new-call/new-call` and
/// subscribe to follow-up events at URLs nothing serves.
///
/// # Errors
/// The line saying which route to drop, with the URL it leaves.
pub fn check_base(webhook: &WebhookUrl) -> Result<(), String> {
    let Some(route) = ALL
        .into_iter()
        .find(|route| webhook.path_prefix().ends_with(route))
    else {
        return Ok(());
    };
    let text = webhook.to_string();
    let (before_query, query) = text
        .split_once('?')
        .map_or((text.as_str(), None), |(b, q)| (b, Some(q)));
    let base = &before_query[..before_query.len() - route.len()];
    let fixed = match query {
        Some(query) => format!("{base}?{query}"),
        None => base.to_owned(),
    };
    Err(format!(
        "invalid WEBHOOK_URL {text:?}: it ends in the route {route}, which the server adds itself; drop {route}: WEBHOOK_URL is the base URL, here {fixed}"
    ))
}

/// The answer that only subscribes to the call's answer and hangup events, at
/// `WEBHOOK_URL`'s routes: every newCall's answer without rules, and the start of every
/// answer with them.
pub fn subscription(webhook: &WebhookUrl) -> Response {
    let url = |route| Url::new(&webhook.callback(route)).expect("WEBHOOK_URL is an absolute URL");
    Response::new()
        .on_answer(url(ON_ANSWER))
        .on_hangup(url(ON_HANGUP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_that_ends_in_a_route_is_refused_with_the_base_to_use() {
        let check = |url: &str| check_base(&WebhookUrl::parse(url).unwrap());
        for good in [
            "https://calls.example.com",
            "https://calls.example.com/hooks/abc?token=1",
            "https://calls.example.com/new-calls",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        assert_eq!(
            check("https://calls.example.com/new-call"),
            Err("invalid WEBHOOK_URL \"https://calls.example.com/new-call\": it ends in the route /new-call, which the server adds itself; drop /new-call: WEBHOOK_URL is the base URL, here https://calls.example.com".to_owned())
        );
        let error = check("https://calls.example.com/hooks/on-hangup/?token=1").unwrap_err();
        assert!(
            error.ends_with("drop /on-hangup: WEBHOOK_URL is the base URL, here https://calls.example.com/hooks?token=1"),
            "{error}"
        );
    }
}
