//! The one error type of Partwise, and the one place it becomes an HTTP answer.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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
    /// A new upload would take its owner past a quota: 403 for live uploads,
    /// 413 for bytes in flight, 429 (with `Retry-After`) for the rate.
    #[error("{message}")]
    QuotaExceeded {
        /// `liveUploads`, `bytesInFlight` or `uploadsPerMinute`.
        quota: &'static str,
        usage: u64,
        limit: u64,
        retry_after: Option<u32>,
        message: String,
    },
    /// S3 or DynamoDB throttled us even after retries; the caller may retry.
    #[error("{0}")]
    Throttled(String),
    /// S3 or DynamoDB failed on their side, timed out, or dropped the
    /// connection, even after retries: nothing the caller did, and a retry
    /// converges (every write is conditional, and settled from S3's truth).
    #[error("{0}")]
    Unavailable(String),
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
            Error::QuotaExceeded { quota, .. } => match *quota {
                "uploadsPerMinute" => 429,
                "bytesInFlight" => 413,
                _ => 403,
            },
            Error::Unavailable(_) => 503,
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
            Error::QuotaExceeded { .. } => "QuotaExceeded",
            Error::Unavailable(_) => "ServiceUnavailable",
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
        let mut body =
            json!({ "error": { "code": self.code(), "message": message }, "message": message });
        if let Error::QuotaExceeded {
            quota,
            usage,
            limit,
            ..
        } = self
        {
            body["error"]["quota"] = json!(quota);
            body["error"]["usage"] = json!(usage);
            body["error"]["limit"] = json!(limit);
        }
        body
    }

    /// Seconds the caller should wait before retrying, for the errors a retry fixes.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::Throttled(_) | Error::Unavailable(_) => Some(1),
            Error::QuotaExceeded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `Allow` header a 405 carries.
    pub fn allow(&self) -> Option<&str> {
        match self {
            Error::MethodNotAllowed { allow, .. } => Some(allow),
            _ => None,
        }
    }

    /// The same error, its message saying which input it is about (e.g.
    /// `files[3]`), for a call that checks many inputs at once.
    pub fn about(self, what: &str) -> Self {
        let at = |m: String| format!("{what}: {m}");
        match self {
            Error::BadRequest(m) => Error::BadRequest(at(m)),
            Error::TooLarge(m) => Error::TooLarge(at(m)),
            Error::Unprocessable(m) => Error::Unprocessable(at(m)),
            Error::Forbidden(m) => Error::Forbidden(at(m)),
            other => other,
        }
    }

    pub fn bad_request(m: impl Into<String>) -> Self {
        Error::BadRequest(m.into())
    }
    pub fn internal(m: impl std::fmt::Display) -> Self {
        Error::Internal(m.to_string())
    }
    /// A call on an upload that an abort claimed first (409).
    pub fn aborted() -> Self {
        Error::Conflict("the upload was aborted".into())
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

/// Maps an SDK error (after the SDK's own retries) to ours, by what the caller
/// can do about it: throttling → 429; a 5xx, a timeout, a reset or refused
/// connection, an unreadable answer → 503 (retry); anything else → 500 (a bug
/// of ours: a request the service refused as malformed).
pub(crate) fn from_sdk<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_throttling(err.code()) {
        tracing::warn!(operation, "throttled after the SDK's retries");
        return Error::Throttled(format!("{operation} was throttled; retry later"));
    }
    let detail = DisplayErrorContext(&err);
    let transient = match &err {
        SdkError::ServiceError(e) => e.raw().status().is_server_error(),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    if transient {
        tracing::warn!(operation, error = %detail, "AWS call failed after the SDK's retries");
        return Error::Unavailable(format!(
            "{operation} is unavailable for the moment; retry later"
        ));
    }
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

    #[test]
    fn faults_of_the_services_are_retryable_and_bugs_are_not() {
        use aws_sdk_s3::operation::list_parts::ListPartsError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let service = |status: u16, code: &str| {
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            let e = ListPartsError::generic(ErrorMetadata::builder().code(code).build());
            from_sdk("ListParts", SdkError::service_error(e, raw))
        };
        let e = service(503, "SlowDown");
        assert_eq!((e.status(), e.retry_after()), (429, Some(1)));
        let e = service(500, "InternalError");
        assert_eq!(
            (e.status(), e.code(), e.retry_after()),
            (503, "ServiceUnavailable", Some(1))
        );
        let e = service(400, "InvalidArgument");
        assert_eq!((e.status(), e.retry_after()), (500, None));
        let e =
            from_sdk::<ListPartsError>("ListParts", SdkError::timeout_error("attempt timed out"));
        assert_eq!(e.status(), 503);
        assert_eq!(e.body()["error"]["code"], "ServiceUnavailable");
    }
}
