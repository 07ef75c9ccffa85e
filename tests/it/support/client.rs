//! Requests through a real HTTP client.

use std::time::Duration;

use super::{FORM, signed_capture};

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

/// POSTs `body` to `url` with `headers`; `Content-Type` is the form type unless `headers`
/// name another.
pub fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
    let mut all = headers.to_vec();
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))
    {
        all.push(("Content-Type", FORM));
    }
    request(url, "POST", body, &all)
}

/// POSTs the real signed request (fixture 18) to `url`.
pub fn post_signed(url: &str) -> Answer {
    let (body, signature) = signed_capture();
    post(url, &body, &[("X-Sipgate-Signature", &signature)])
}

pub fn get(url: &str) -> Answer {
    request(url, "GET", b"", &[])
}
