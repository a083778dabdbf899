//! Building responses.

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;

use super::body::Body;
use crate::error::ApiError;

/// A response of this server.
pub type Response = http::Response<Body>;

/// A response under construction.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Reply {
    /// A response with `status`.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::with_capacity(6),
        }
    }

    /// Adds a header; values that are not valid header text are dropped (they come from our own
    /// validated data, so this does not happen in practice).
    pub fn header(mut self, name: impl TryInto<HeaderName>, value: impl AsRef<str>) -> Self {
        if let (Ok(n), Ok(v)) = (name.try_into(), HeaderValue::from_str(value.as_ref())) {
            self.headers.push((n, v));
        }
        self
    }

    /// Finishes with `body` (Content-Length set from it unless already set).
    pub fn body(self, body: Body) -> Response {
        let len = match &body {
            Body::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(_) => None,
        };
        let mut r = http::Response::new(body);
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        for (n, v) in self.headers {
            h.append(n, v);
        }
        if let Some(len) = len {
            h.entry(CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(len));
        }
        r
    }

    /// Finishes with an empty body.
    pub fn empty(self) -> Response {
        self.body(Body::empty())
    }

    /// Finishes with a JSON body.
    pub fn json(self, value: &serde_json::Value) -> Response {
        self.header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(value).unwrap_or_default().into())
    }
}

/// A spec error response.
pub fn error_response(e: &ApiError) -> Response {
    let mut r = Reply::new(e.status).header(CONTENT_TYPE, "application/json");
    if let Some(c) = &e.challenge {
        r = r.header(http::header::WWW_AUTHENTICATE, c);
    }
    r.body(e.body().into())
}
