//! Presigning: part-upload URLs (SigV4 query signing through the SDK) and
//! browser POST forms (SigV4-signed policy documents, which the Rust SDK lacks).

use crate::error::{Error, Result};
use crate::model::ChecksumAlgorithm;
use crate::storage::PartChecksum;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;

/// A presigned URL and when it stops working.
#[derive(Debug, Clone, Serialize)]
pub struct SignedUrl {
    pub url: String,
    /// Seconds the URL stays valid.
    pub expires: u64,
    /// Headers signed into the URL, which the request must carry exactly (a
    /// part's `x-amz-checksum-*`, an object's `content-type`). Absent when
    /// none: Uppy's plain part URLs are unchanged.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// The headers a presigned request must be sent with, except `host` (the URL's own).
fn signed_headers(req: &aws_sdk_s3::presigning::PresignedRequest) -> BTreeMap<String, String> {
    req.headers()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// A presigned POST form: the browser posts `fields` plus `file` to `url`.
#[derive(Debug, Clone, Serialize)]
pub struct PostForm {
    pub method: &'static str,
    pub url: String,
    pub fields: BTreeMap<String, String>,
    pub expires: u64,
}

/// Signs for one bucket with the Lambda's own credentials.
#[derive(Clone, Debug)]
pub struct Presigner {
    client: Client,
    bucket: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The bucket's URL as the SDK addresses it (path- or virtual-host style).
    bucket_url: std::sync::Arc<OnceCell<String>>,
}

impl Presigner {
    pub fn new(client: Client, bucket: impl Into<String>, sdk: &aws_config::SdkConfig) -> Self {
        Presigner {
            client,
            bucket: bucket.into(),
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
            credentials: sdk.credentials_provider(),
            bucket_url: Default::default(),
        }
    }

    fn config(expiry: Duration) -> Result<PresigningConfig> {
        PresigningConfig::expires_in(expiry).map_err(Error::internal)
    }

    /// A URL to PUT part `part_number` of an upload.
    pub async fn part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expiry: Duration,
    ) -> Result<SignedUrl> {
        self.part_with_checksum(key, upload_id, part_number, expiry, None)
            .await
    }

    /// A URL to PUT part `part_number` of an upload. With `checksum`, its
    /// `x-amz-checksum-*` header is signed in: S3 refuses the PUT without it,
    /// and refuses bytes whose checksum differs.
    pub async fn part_with_checksum(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        expiry: Duration,
        checksum: Option<&PartChecksum>,
    ) -> Result<SignedUrl> {
        let value = |a| {
            checksum
                .filter(|c| c.algorithm == a)
                .map(|c| c.value.clone())
        };
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .set_checksum_crc32_c(value(ChecksumAlgorithm::Crc32c))
            .set_checksum_crc32(value(ChecksumAlgorithm::Crc32))
            .set_checksum_sha256(value(ChecksumAlgorithm::Sha256))
            .set_checksum_crc64_nvme(value(ChecksumAlgorithm::Crc64Nvme))
            .presigned(Self::config(expiry)?)
            .await
            .map_err(|e| Error::internal(format!("presigning UploadPart: {e}")))?;
        Ok(SignedUrl {
            url: req.uri().to_string(),
            expires: expiry.as_secs(),
            headers: signed_headers(&req),
        })
    }

    /// A URL to PUT a whole object of `content_type` at `key` in one request
    /// (for an empty file, which a multipart upload cannot carry).
    pub async fn put_object(
        &self,
        key: &str,
        content_type: &str,
        expiry: Duration,
    ) -> Result<SignedUrl> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(Self::config(expiry)?)
            .await
            .map_err(|e| Error::internal(format!("presigning PutObject: {e}")))?;
        Ok(SignedUrl {
            url: req.uri().to_string(),
            expires: expiry.as_secs(),
            headers: signed_headers(&req),
        })
    }

    /// The object's URL (path segments escaped as S3 does), the same base the
    /// POST forms use: one `location` shape for every upload, on AWS and on
    /// a local stack alike (S3's own `Location` names a virtual host there).
    pub async fn object_url(&self, key: &str) -> Result<String> {
        let base = self.bucket_url().await?;
        let mut url = String::with_capacity(base.len() + key.len());
        url.push_str(base);
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
        Ok(url)
    }

    /// The bucket's base URL, learned once from the SDK's own endpoint resolution
    /// so POST forms go where the SDK would send requests.
    async fn bucket_url(&self) -> Result<&str> {
        self.bucket_url
            .get_or_try_init(|| async {
                let probe = "partwise-probe";
                let req = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(probe)
                    .presigned(Self::config(Duration::from_secs(60))?)
                    .await
                    .map_err(|e| Error::internal(format!("presigning PutObject: {e}")))?;
                let uri = req.uri();
                let base = uri.split('?').next().unwrap_or(uri);
                base.strip_suffix(probe).map(str::to_string).ok_or_else(|| {
                    Error::internal(format!("unexpected presigned URL shape: {base}"))
                })
            })
            .await
            .map(String::as_str)
    }

    /// A POST form that lets a browser upload exactly `key`, of `content_type`,
    /// at most `max_size` bytes, within `expiry`.
    pub async fn post_form(
        &self,
        key: &str,
        content_type: &str,
        max_size: u64,
        expiry: Duration,
        metadata: &crate::metadata::Metadata,
    ) -> Result<PostForm> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| Error::internal("no AWS credentials to sign with"))?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| Error::internal(format!("loading credentials: {e}")))?;
        let now = SystemTime::now();
        let url = self.bucket_url().await?.trim_end_matches('/').to_string();
        let form = sign_post_policy(&PolicyInput {
            bucket: &self.bucket,
            key,
            content_type,
            max_size,
            expiry,
            now,
            region: &self.region,
            access_key: creds.access_key_id(),
            secret_key: creds.secret_access_key(),
            session_token: creds.session_token(),
            metadata,
        })?;
        Ok(PostForm {
            method: "POST",
            url,
            fields: form,
            expires: expiry.as_secs(),
        })
    }
}

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
