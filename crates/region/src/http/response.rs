//! Building responses the way MAAS sends them: pretty JSON, plain text,
//! and a `Content-Type` on every response, 204 included (maascli needs one).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ServiceError;

pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON body with MAAS's 4-space indent.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match maas_api_types::pretty::to_vec(value) {
        Ok(bytes) => with_type(status, JSON, bytes),
        Err(error) => {
            tracing::error!(%error, "response failed to serialise");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "response failed to serialise",
            )
        }
    }
}

pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> Response {
    json(StatusCode::OK, value)
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    with_type(status, TEXT, body.into())
}

pub fn no_content() -> Response {
    with_type(StatusCode::NO_CONTENT, TEXT, Body::empty())
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        match self {
            ServiceError::Validation(fields) => json(StatusCode::BAD_REQUEST, &fields),
            ServiceError::BadRequest(message) => text(StatusCode::BAD_REQUEST, message),
            ServiceError::Unauthorized(message) => {
                let mut response = text(StatusCode::UNAUTHORIZED, message);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("OAuth realm=\"OAuth\""),
                );
                response
            }
            ServiceError::Forbidden(message) => text(StatusCode::FORBIDDEN, message),
            ServiceError::NotFound(message) => text(StatusCode::NOT_FOUND, message),
            ServiceError::Conflict(message) => text(StatusCode::CONFLICT, message),
            ServiceError::Gone(message) => text(StatusCode::GONE, message),
            ServiceError::Unavailable { message, retry } => {
                let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
                if retry {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                }
                response
            }
            ServiceError::MethodNotAllowed { allow } => {
                let mut response = with_type(StatusCode::METHOD_NOT_ALLOWED, TEXT, Body::empty());
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                response
            }
            ServiceError::Store(maas_store::StoreError::NotFound { what }) => text(
                StatusCode::NOT_FOUND,
                format!("No {what} matches the given query."),
            ),
            ServiceError::Store(maas_store::StoreError::Conflict { what }) => json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"__all__": [format!("{what} already exists")]}),
            ),
            ServiceError::Store(error) => {
                // Internal detail goes to the log, not to the client.
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "store failure");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error: the database failed; see the region log.",
                )
            }
        }
    }
}
