//! Browser POST forms: SigV4-signed policy documents, which the Rust SDK lacks.

use crate::error::{Error, Result};
use base64::Engine;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// What a POST policy is made of.
pub struct PolicyInput<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    pub max_size: u64,
    pub expiry: Duration,
    pub now: SystemTime,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
    /// The object's user metadata, as `x-amz-meta-*` fields the policy binds.
    pub metadata: &'a crate::metadata::Metadata,
}

/// Builds and signs the POST policy; returns the form fields.
pub fn sign_post_policy(p: &PolicyInput<'_>) -> Result<BTreeMap<String, String>> {
    let fmt_err = |e: time::error::Format| Error::internal(e);
    let now = time::OffsetDateTime::from(p.now);
    let amz_date = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(fmt_err)?;
    let short_date = &amz_date[..8];
    let expiration = (now + p.expiry)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
        ))
        .map_err(fmt_err)?;
    let credential = format!("{}/{short_date}/{}/s3/aws4_request", p.access_key, p.region);

    let mut fields = BTreeMap::new();
    fields.insert("key".to_string(), p.key.to_string());
    fields.insert("Content-Type".to_string(), p.content_type.to_string());
    fields.insert(
        "x-amz-algorithm".to_string(),
        "AWS4-HMAC-SHA256".to_string(),
    );
    fields.insert("x-amz-credential".to_string(), credential);
    fields.insert("x-amz-date".to_string(), amz_date);
    if let Some(token) = p.session_token {
        fields.insert("x-amz-security-token".to_string(), token.to_string());
    }
    for (k, v) in p.metadata {
        fields.insert(format!("x-amz-meta-{k}"), v.clone());
    }
    let mut conditions = vec![
        json!({ "bucket": p.bucket }),
        json!(["content-length-range", 0, p.max_size]),
    ];
    conditions.extend(fields.iter().map(|(k, v)| json!({ k: v })));
    let policy = json!({ "expiration": expiration, "conditions": conditions });
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());

    let key = aws_sigv4::sign::v4::generate_signing_key(p.secret_key, p.now, p.region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, policy_b64.as_bytes());
    fields.insert("policy".to_string(), policy_b64);
    fields.insert("x-amz-signature".to_string(), signature);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_binds_key_type_size_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let fields = sign_post_policy(&PolicyInput {
            bucket: "b",
            key: "uploads/a/id/x.png",
            content_type: "image/png",
            max_size: 1000,
            expiry: Duration::from_secs(3600),
            now,
            region: "us-east-1",
            access_key: "AKIDEXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: None,
            metadata: &Default::default(),
        })
        .unwrap();
        assert_eq!(fields["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            fields["x-amz-credential"],
            "AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request"
        );
        let policy: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&fields["policy"])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(policy["expiration"], "2015-08-30T13:36:00.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!(["content-length-range", 0, 1000])));
        assert!(conditions.contains(&json!({"key": "uploads/a/id/x.png"})));
        assert!(conditions.contains(&json!({"Content-Type": "image/png"})));
        assert_eq!(fields["x-amz-signature"].len(), 64);
        // The signature covers the policy: change one byte and it no longer matches.
        let key = aws_sigv4::sign::v4::generate_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            now,
            "us-east-1",
            "s3",
        );
        let mut tampered = fields["policy"].clone().into_bytes();
        tampered[10] ^= 1;
        assert_ne!(
            aws_sigv4::sign::v4::calculate_signature(key, &tampered),
            fields["x-amz-signature"]
        );
    }
}
