//! S3's "Object Created" notifications, in both shapes S3 sends them: an
//! EventBridge event (`detail-type: Object Created`, the template's choice)
//! and S3 event notification records (`Records[]`, S3 → Lambda, SQS or SNS).

use crate::error::{Error, Result};
use serde_json::Value;

/// How S3 created the object, as its notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `PutObject` / `ObjectCreated:Put`.
    Put,
    /// `POSTObject` / `ObjectCreated:Post`.
    Post,
    /// `CompleteMultipartUpload` / `ObjectCreated:CompleteMultipartUpload`.
    CompleteMultipartUpload,
    /// Anything else (`CopyObject`, ...).
    Other,
}

impl Reason {
    fn parse(s: &str) -> Reason {
        match s.strip_prefix("ObjectCreated:").unwrap_or(s) {
            "PutObject" | "Put" => Reason::Put,
            "POSTObject" | "Post" => Reason::Post,
            "CompleteMultipartUpload" => Reason::CompleteMultipartUpload,
            _ => Reason::Other,
        }
    }
}

/// One object S3 reports created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The key, decoded (S3's records carry it form-encoded; EventBridge does not).
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub reason: Reason,
}

/// The objects an event reports created: one for an EventBridge event, one
/// per `ObjectCreated:*` record otherwise. Other events and records (a
/// deletion, a test event) report none; an event of neither shape is a 400,
/// so Lambda retries it and, at last, hands it to the on-failure destination.
pub fn parse(event: &Value) -> Result<Vec<ObjectCreated>> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return records.iter().filter_map(record).collect();
    }
    if event.get("detail-type").is_some() {
        if event["source"] != "aws.s3" || event["detail-type"] != "Object Created" {
            return Ok(vec![]);
        }
        let d = &event["detail"];
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::bad_request(format!("Object Created event without {what}")))
        };
        return Ok(vec![ObjectCreated {
            bucket: text(&d["bucket"]["name"], "detail.bucket.name")?,
            key: text(&d["object"]["key"], "detail.object.key")?,
            size: d["object"]["size"].as_u64(),
            etag: d["object"]["etag"].as_str().map(str::to_string),
            reason: Reason::parse(d["reason"].as_str().unwrap_or_default()),
        }]);
    }
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(vec![]);
    }
    Err(Error::bad_request(
        "neither an EventBridge event nor S3 event notification records",
    ))
}

/// One S3 event notification record, if it reports an object created.
fn record(r: &Value) -> Option<Result<ObjectCreated>> {
    let name = r["eventName"].as_str()?;
    if !name.starts_with("ObjectCreated:") {
        return None;
    }
    let s3 = &r["s3"];
    let (Some(bucket), Some(key)) = (s3["bucket"]["name"].as_str(), s3["object"]["key"].as_str())
    else {
        return Some(Err(Error::bad_request(format!(
            "{name} record without its bucket or key"
        ))));
    };
    Some(Ok(ObjectCreated {
        bucket: bucket.to_string(),
        key: form_decoded(key),
        size: s3["object"]["size"].as_u64(),
        etag: s3["object"]["eTag"].as_str().map(str::to_string),
        reason: Reason::parse(name),
    }))
}

/// A key as S3's records write it: form-encoded (`+` for a space).
fn form_decoded(key: &str) -> String {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eventbridge_events_are_read() {
        let e = json!({
            "version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "uploads/a b/x:y.zip", "size": 5, "etag": "abc"},
                       "reason": "POSTObject"}
        });
        let got = parse(&e).unwrap();
        assert_eq!(
            got,
            vec![ObjectCreated {
                bucket: "b".into(),
                key: "uploads/a b/x:y.zip".into(),
                size: Some(5),
                etag: Some("abc".into()),
                reason: Reason::Post,
            }]
        );
        let deleted = json!({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}});
        assert!(parse(&deleted).unwrap().is_empty());
        let broken = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}});
        assert_eq!(parse(&broken).unwrap_err().status(), 400);
    }

    #[test]
    fn notification_records_are_read_and_their_keys_decoded() {
        let e = json!({"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},
              "object": {"key": "uploads/a+b/caf%C3%A9%2B1.txt", "size": 3, "eTag": "e"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}},
            {"eventName": "ObjectCreated:CompleteMultipartUpload", "s3": {"bucket": {"name": "b"},
              "object": {"key": "k&x=1"}}}
        ]});
        let got = parse(&e).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "uploads/a b/café+1.txt");
        assert_eq!(got[0].reason, Reason::Put);
        assert_eq!(got[1].key, "k&x=1");
        assert_eq!(got[1].reason, Reason::CompleteMultipartUpload);
        assert!(parse(&json!({"Event": "s3:TestEvent"})).unwrap().is_empty());
        assert_eq!(parse(&json!({"hello": 1})).unwrap_err().status(), 400);
    }
}
