//! Names the operation of a request, as rules name it: DynamoDB's from
//! `X-Amz-Target`, S3's from the method and the query's subresources.

use super::rules::Service;
use hyper::{Method, Request};

/// The operation name (`UpdateItem`, `CompleteMultipartUpload`...), or
/// `Unknown` for a request no rule can name.
pub fn name<B>(service: Service, req: &Request<B>) -> String {
    match service {
        Service::DynamoDb => req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("Unknown")
            .to_string(),
        Service::S3 => s3(req.method(), req.uri().query().unwrap_or("")).to_string(),
    }
}

fn s3(method: &Method, query: &str) -> &'static str {
    let has = |k: &str| query.split('&').any(|p| p.split('=').next() == Some(k));
    let object = !has("list-type") && !has("uploads") || has("uploadId");
    match *method {
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::GET if has("uploadId") => "ListParts",
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::PUT if has("partNumber") => "UploadPart",
        Method::HEAD => "HeadObject",
        Method::GET if object => "GetObject",
        Method::PUT => "PutObject",
        Method::DELETE => "DeleteObject",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_name(method: Method, uri: &str) -> String {
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        name(Service::S3, &req)
    }

    #[test]
    fn names_the_operations_the_handlers_call() {
        assert_eq!(
            s3_name(Method::POST, "/b/k?uploads"),
            "CreateMultipartUpload"
        );
        assert_eq!(
            s3_name(Method::POST, "/b/k?uploadId=u"),
            "CompleteMultipartUpload"
        );
        assert_eq!(
            s3_name(Method::DELETE, "/b/k?uploadId=u"),
            "AbortMultipartUpload"
        );
        assert_eq!(
            s3_name(Method::GET, "/b/k?uploadId=u&part-number-marker=2"),
            "ListParts"
        );
        assert_eq!(
            s3_name(Method::GET, "/b?uploads&prefix=p"),
            "ListMultipartUploads"
        );
        assert_eq!(s3_name(Method::GET, "/b?list-type=2"), "ListObjectsV2");
        assert_eq!(s3_name(Method::HEAD, "/b/k"), "HeadObject");
        assert_eq!(
            s3_name(Method::PUT, "/b/k?partNumber=1&uploadId=u"),
            "UploadPart"
        );
        let req = Request::builder()
            .method(Method::POST)
            .header("X-Amz-Target", "DynamoDB_20120810.UpdateItem")
            .body(())
            .unwrap();
        assert_eq!(name(Service::DynamoDb, &req), "UpdateItem");
    }
}
