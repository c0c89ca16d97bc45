//! The region's one error type. Services return it; the HTTP edge maps each
//! variant to MAAS's status and body conventions (api.md §3.5).

use std::collections::BTreeMap;

use maas_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Form validation failed: field name → messages (`__all__` for the form).
    #[error("invalid input: {0:?}")]
    Validation(BTreeMap<String, Vec<String>>),
    /// Any other bad request, answered as plain text.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials where they are needed, or an OAuth failure.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The object's state forbids the action.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    /// A dependency is unavailable (a BMC, a rack); `retry` adds Retry-After.
    #[error("{message}")]
    Unavailable { message: String, retry: bool },
    /// The method is not supported by the resource.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<&'static str> },
    #[error("store failure")]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn field(field: &str, message: impl Into<String>) -> ServiceError {
        let mut map = BTreeMap::new();
        map.insert(field.to_owned(), vec![message.into()]);
        ServiceError::Validation(map)
    }

    pub fn bad_request(message: impl Into<String>) -> ServiceError {
        ServiceError::BadRequest(message.into())
    }

    pub fn not_found(model: &str) -> ServiceError {
        ServiceError::NotFound(format!("No {model} matches the given query."))
    }

    pub fn conflict(message: impl Into<String>) -> ServiceError {
        ServiceError::Conflict(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::Forbidden(message.into())
    }

    pub fn admin_only() -> ServiceError {
        ServiceError::Forbidden("This method is reserved for admin users.".to_owned())
    }

    /// `No provided <param>!`, MAAS's message for a missing mandatory parameter.
    pub fn missing(param: &str) -> ServiceError {
        ServiceError::BadRequest(format!("No provided {param}!"))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Collects field errors, then turns into a `Validation` error if any.
#[derive(Default, Debug)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> FieldErrors {
        FieldErrors::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn check(self) -> ServiceResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Validation(self.0))
        }
    }
}
