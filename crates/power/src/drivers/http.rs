//! What the HTTP drivers (redfish, webhook) share: the client and the
//! mapping of HTTP failures to [`PowerError`].

use std::io;

use crate::driver::Timeouts;
use crate::error::{PowerAction, PowerError};

/// A client bounded by the driver's request timeout. BMCs use self-signed
/// certificates, so verification is off unless asked for, as in MAAS.
pub(crate) fn client(
    verify_tls: bool,
    timeouts: &Timeouts,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!verify_tls)
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(timeouts.request)
        .timeout(timeouts.request)
        .user_agent(concat!("MAAS maas-power/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn io_kind(error: &reqwest::Error) -> io::ErrorKind {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return io_error.kind();
        }
        source = cause.source();
    }
    io::ErrorKind::Other
}

/// Turns a failed request into a retryable or final error. The URL is left
/// out of the wrapped error because it may carry credentials.
pub(crate) fn request_error(
    error: reqwest::Error,
    bmc: &str,
    action: PowerAction,
    timeouts: &Timeouts,
) -> PowerError {
    let error = error.without_url();
    if error.is_timeout() {
        PowerError::Timeout {
            bmc: bmc.to_owned(),
            action,
            waited: timeouts.request,
        }
    } else if error.is_decode() || error.is_body() {
        PowerError::BadReply {
            bmc: bmc.to_owned(),
            action,
            reason: format!("could not read the reply: {error}"),
        }
    } else {
        PowerError::Connection {
            bmc: bmc.to_owned(),
            action,
            source: io::Error::new(io_kind(&error), error),
        }
    }
}

/// Maps an HTTP error status, with a short excerpt of the body.
pub(crate) fn status_error(
    status: reqwest::StatusCode,
    body: &str,
    bmc: &str,
    action: PowerAction,
) -> PowerError {
    let excerpt = body_excerpt(body);
    let reason = format!("HTTP {status}{excerpt}");
    match status.as_u16() {
        401 | 403 => PowerError::Authentication {
            bmc: bmc.to_owned(),
            action,
            reason,
        },
        429 | 502..=504 => PowerError::Busy {
            bmc: bmc.to_owned(),
            action,
            reason,
        },
        _ => PowerError::Refused {
            bmc: bmc.to_owned(),
            action,
            reason,
        },
    }
}

/// Redfish errors carry `error.message` or `@Message.ExtendedInfo`; other
/// bodies are shown as their first line, cut short.
fn body_excerpt(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            let error = &json["error"];
            error["@Message.ExtendedInfo"][0]["Message"]
                .as_str()
                .or_else(|| error["message"].as_str())
                .map(str::to_owned)
        });
    let text = from_json.unwrap_or_else(|| body.lines().next().unwrap_or_default().to_owned());
    let text: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let bmc = "https://10.0.0.2";
        let auth = status_error(reqwest::StatusCode::UNAUTHORIZED, "", bmc, PowerAction::On);
        assert!(matches!(auth, PowerError::Authentication { .. }));
        let busy = status_error(
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "",
            bmc,
            PowerAction::On,
        );
        assert!(busy.is_retryable());
        let body = r#"{"error": {"code": "Base.1.0.GeneralError", "message": "no such system"}}"#;
        let refused = status_error(
            reqwest::StatusCode::NOT_FOUND,
            body,
            bmc,
            PowerAction::Query,
        );
        assert_eq!(
            refused.to_string(),
            "BMC https://10.0.0.2 refused to query power state: HTTP 404 Not Found: no such system"
        );
    }
}
