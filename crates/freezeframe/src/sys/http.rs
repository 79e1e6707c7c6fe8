//! HTTP(S) POSTs, for notifications: the one place the library talks HTTP
//! outside a repository backend. Behind a trait so the notifier's retry
//! logic is tested with a fake, and with a real server on 127.0.0.1.

use std::time::Duration;

/// A request that did not get a response.
#[derive(Debug, thiserror::Error)]
#[error("POST {url}: {reason}")]
pub struct HttpError {
    /// The URL.
    pub url: String,
    /// What went wrong (timed out, refused, TLS).
    pub reason: String,
}

/// Sends POST requests.
pub trait HttpClient: Send + Sync {
    /// POSTs `body` as `content_type` to `url`, waiting at most `timeout`
    /// for the whole exchange; returns the response status.
    fn post(
        &self,
        url: &str,
        body: &[u8],
        content_type: &str,
        timeout: Duration,
    ) -> Result<u16, HttpError>;
}

/// The system's HTTP client (reqwest over the system's OpenSSL).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemHttp;

impl HttpClient for SystemHttp {
    fn post(
        &self,
        url: &str,
        body: &[u8],
        content_type: &str,
        timeout: Duration,
    ) -> Result<u16, HttpError> {
        let err = |e: reqwest::Error| HttpError {
            url: url.to_owned(),
            reason: if e.is_timeout() {
                format!("no answer within {}", crate::sys::HumanDuration(timeout))
            } else {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(c) = src {
                    s = format!("{s}: {c}");
                    src = c.source();
                }
                s
            },
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("freezeframe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(err)?;
        let resp = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()
            .map_err(err)?;
        Ok(resp.status().as_u16())
    }
}
