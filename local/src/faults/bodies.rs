//! The error answers S3 and DynamoDB send, byte for byte in the shape the SDKs parse.

use super::rules::Fault;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

/// The service's answer for an error fault; `None` for faults of the connection.
pub fn answer(fault: Fault, request_id: u64) -> Option<Response<Bytes>> {
    let (status, body, content_type) = match fault {
        Fault::S3SlowDown => (
            503,
            s3("SlowDown", "Please reduce your request rate.", request_id),
            "application/xml",
        ),
        Fault::S3InternalError => (
            500,
            s3(
                "InternalError",
                "We encountered an internal error. Please try again.",
                request_id,
            ),
            "application/xml",
        ),
        Fault::DynamoThroughputExceeded => (
            400,
            dynamodb(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            ),
            "application/x-amz-json-1.0",
        ),
        Fault::DynamoThrottling => (
            400,
            dynamodb(
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            "application/x-amz-json-1.0",
        ),
        Fault::DynamoInternalError => (
            500,
            dynamodb(
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            ),
            "application/x-amz-json-1.0",
        ),
        Fault::ResetBefore | Fault::ResetAfter | Fault::Latency(_) | Fault::Stall(_) => {
            return None;
        }
    };
    Response::builder()
        .status(StatusCode::from_u16(status).ok()?)
        .header("content-type", content_type)
        .header("x-amz-request-id", format!("fault{request_id}"))
        .header("x-amzn-requestid", format!("fault{request_id}"))
        .body(Bytes::from(body))
        .ok()
}

fn s3(code: &str, message: &str, request_id: u64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>fault{request_id}</RequestId><HostId>partwise-faults</HostId></Error>"
    )
}

fn dynamodb(error_type: &str, message: &str) -> String {
    serde_json::json!({ "__type": error_type, "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_codes_the_sdks_read() {
        let r = answer(Fault::S3SlowDown, 1).unwrap();
        assert_eq!(r.status(), 503);
        assert!(
            std::str::from_utf8(r.body())
                .unwrap()
                .contains("<Code>SlowDown</Code>")
        );
        let r = answer(Fault::DynamoThrottling, 2).unwrap();
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert!(
            v["__type"]
                .as_str()
                .unwrap()
                .ends_with("#ThrottlingException")
        );
        assert_eq!(answer(Fault::DynamoInternalError, 3).unwrap().status(), 500);
        assert!(answer(Fault::ResetAfter, 4).is_none());
    }
}
