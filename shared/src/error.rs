//! The one error type of Partwise, and the one place it becomes an HTTP answer.

use serde_json::json;

/// Everything that can go wrong, grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: bad JSON, a missing or invalid field.
    #[error("{0}")]
    BadRequest(String),
    /// No caller identity where one is required (no token, or no `sub`), as
    /// API Gateway's JWT authorizer answers a missing token.
    #[error("{0}")]
    Unauthorized(String),
    /// A known caller who may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such upload for this caller (another owner's upload looks the same).
    #[error("{0}")]
    NotFound(String),
    /// The upload is in a state that does not allow this call.
    #[error("{0}")]
    Conflict(String),
    /// A size limit is exceeded: the declared file, or the request body.
    #[error("{0}")]
    TooLarge(String),
    /// Well-formed but not acceptable: a part list S3 would refuse, and the like.
    #[error("{0}")]
    Unprocessable(String),
    /// S3 or DynamoDB throttled us even after retries; the caller may retry.
    #[error("{0}")]
    Throttled(String),
    /// The route is not one of ours.
    #[error("{0}")]
    UnknownRoute(String),
    /// A known path asked with a method none of its routes takes (TRACE, PUT...).
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        /// The `Allow` header: the methods the path takes.
        allow: String,
    },
    /// The request line alone is over API Gateway's limit on request line and headers.
    #[error("{0}")]
    UriTooLong(String),
    /// The request line and headers together are over API Gateway's limit.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Configuration is missing or invalid; found at start, never per request.
    #[error("configuration: {0}")]
    Config(String),
    /// A real fault in S3, DynamoDB or our code.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) | Error::UnknownRoute(_) => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::UriTooLong(_) => 414,
            Error::HeadersTooLarge(_) => 431,
            Error::Unprocessable(_) => 422,
            Error::Throttled(_) => 429,
            Error::Config(_) | Error::Internal(_) => 500,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BadRequest",
            Error::Unauthorized(_) => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::NotFound(_) => "NotFound",
            Error::UnknownRoute(_) => "UnknownRoute",
            Error::MethodNotAllowed { .. } => "MethodNotAllowed",
            Error::UriTooLong(_) => "UriTooLong",
            Error::HeadersTooLarge(_) => "HeadersTooLarge",
            Error::Conflict(_) => "Conflict",
            Error::TooLarge(_) => "TooLarge",
            Error::Unprocessable(_) => "Unprocessable",
            Error::Throttled(_) => "Throttled",
            Error::Config(_) => "ConfigError",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The JSON body every error answers with: `{"error": {"code", "message"}, "message"}`.
    /// The top-level `message` is what Uppy shows its users.
    pub fn body(&self) -> serde_json::Value {
        // Internal details go to the logs, not to callers.
        let message = match self {
            Error::Internal(_) | Error::Config(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        json!({ "error": { "code": self.code(), "message": message }, "message": message })
    }

    /// The `Allow` header a 405 carries.
    pub fn allow(&self) -> Option<&str> {
        match self {
            Error::MethodNotAllowed { allow, .. } => Some(allow),
            _ => None,
        }
    }

    pub fn bad_request(m: impl Into<String>) -> Self {
        Error::BadRequest(m.into())
    }
    pub fn internal(m: impl std::fmt::Display) -> Self {
        Error::Internal(m.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error codes AWS uses for "slow down"; they become 429 so callers back off.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "TooManyRequestsException",
    "RequestThrottled",
];

/// Whether an AWS error code means throttling.
pub fn is_throttling(code: Option<&str>) -> bool {
    code.is_some_and(|c| THROTTLING_CODES.contains(&c))
}

/// Maps an SDK error (after the SDK's own retries) to ours: throttling → 429, anything else → 500.
pub(crate) fn from_sdk<E>(operation: &str, err: E) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_throttling(err.code()) {
        return Error::Throttled(format!("{operation} was throttled; retry later"));
    }
    let detail = aws_smithy_types::error::display::DisplayErrorContext(&err);
    tracing::error!(operation, error = %detail, "AWS call failed");
    Error::Internal(format!("{operation} failed: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_identity_is_401_and_a_refusal_403() {
        let e = Error::Unauthorized("this API needs an authenticated caller".into());
        assert_eq!((e.status(), e.code()), (401, "Unauthorized"));
        assert_eq!(e.body()["error"]["code"], "Unauthorized");
        assert_eq!(
            e.body()["message"],
            "this API needs an authenticated caller"
        );
        let e = Error::Forbidden("no".into());
        assert_eq!((e.status(), e.code()), (403, "Forbidden"));
    }
}
