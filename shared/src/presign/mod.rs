//! Presigning: part-upload URLs (SigV4 query signing with a cached key),
//! single PUTs (through the SDK) and browser POST forms (signed policies).
//!
//! Part URLs are signed by hand. A 50 GB upload asks for 10,000 of them, and
//! the SDK's `presigned()` runs its whole request pipeline for each (endpoint
//! resolution, interceptors, key derivation: tens of µs), while `aws-sigv4`
//! derives the signing key again for every request. No crate presigns with a
//! key derived once per day and builds UploadPart's canonical request
//! directly, hashing what every part of an upload shares once per batch
//! ([`UploadParts`]) and signing a batch's parts two at a time (`sha`);
//! `shared/tests/presign.rs` holds the output byte for byte to `aws-sigv4`'s
//! and to the SDK's for the same inputs.

mod cache;
mod canonical;
mod encode;
mod key;
mod part;
mod post;
mod sha;

pub use cache::KeyCache;
pub use key::SigningKey;
pub use part::{
    Endpoint, PartRequest, Stamp, UploadParts, presign as presign_part, presign_stamped,
};
pub use post::{PolicyInput, sign_post_policy};

use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::storage::PartChecksum;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// none: Uppy's plain part URLs are unchanged. A part's signed
    /// `content-length` is not listed: every client sets it from the body.
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

/// A whole object to PUT in one request, as [`Presigner::put_object_with`] signs it.
#[derive(Debug)]
pub struct ObjectPut<'a> {
    pub key: &'a str,
    pub content_type: &'a str,
    /// Exactly the body's length: S3 refuses any other.
    pub content_length: u64,
    /// The body's CRC32C, base64, as S3's `x-amz-checksum-crc32c` header.
    pub crc32c: Option<&'a str>,
    pub metadata: &'a Metadata,
}

/// Part URLs signed at one moment ([`Presigner::part_signer`]).
#[derive(Debug)]
pub struct PartSigner<'a> {
    key: Arc<SigningKey>,
    endpoint: &'a Endpoint,
    stamp: Stamp,
}

impl PartSigner<'_> {
    /// The URL to PUT `part`, with its checksum and size signed in when it has them.
    pub fn sign(&self, part: &PartRequest<'_>) -> SignedUrl {
        presign_stamped(self.endpoint, &self.key, &self.stamp, part)
    }

    /// Signs many parts of one upload, the URL and canonical request built
    /// once for parts shaped like `like` (see [`UploadParts`]).
    pub fn parts_like(&self, like: &PartRequest<'_>) -> UploadParts<'_> {
        UploadParts::new(self.endpoint, &self.key, &self.stamp, like)
    }
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
    endpoint: Arc<OnceCell<Endpoint>>,
    /// Part URLs' signing key, shared by every clone.
    keys: Arc<KeyCache>,
}

impl Presigner {
    pub fn new(client: Client, bucket: impl Into<String>, sdk: &aws_config::SdkConfig) -> Self {
        let region = sdk
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let credentials = sdk.credentials_provider();
        Presigner {
            client,
            bucket: bucket.into(),
            keys: Arc::new(KeyCache::new(credentials.clone(), &region, "s3")),
            region,
            credentials,
            endpoint: Default::default(),
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
        self.upload_part(
            &PartRequest {
                key,
                upload_id,
                part_number,
                checksum,
                content_length: None,
            },
            expiry,
        )
        .await
    }

    /// A URL to PUT one part, with its checksum and its size signed in when
    /// `part` has them.
    pub async fn upload_part(&self, part: &PartRequest<'_>, expiry: Duration) -> Result<SignedUrl> {
        Ok(self.part_signer(expiry).await?.sign(part))
    }

    /// Signs any number of parts as of now, valid for `expiry`: the signing
    /// key, the endpoint and the timestamp are looked up once for them all.
    pub async fn part_signer(&self, expiry: Duration) -> Result<PartSigner<'_>> {
        let now = SystemTime::now();
        Ok(PartSigner {
            key: self.keys.key_at(now).await?,
            endpoint: self.endpoint().await?,
            stamp: Stamp::new(now, expiry)?,
        })
    }

    /// A URL to PUT a whole object of `content_type` and exactly
    /// `content_length` bytes at `key` in one request (for an empty file,
    /// which a multipart upload cannot carry). The length is signed in, so S3
    /// refuses a body of any other size: without it, the URL would take up
    /// to S3's 5 GiB single-PUT limit. Like a part's, the signed
    /// `content-length` is left out of the headers to send: clients set it
    /// from the body, and browsers refuse to set it by hand.
    pub async fn put_object(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expiry: Duration,
    ) -> Result<SignedUrl> {
        self.put_object_with(
            &ObjectPut {
                key,
                content_type,
                content_length,
                crc32c: None,
                metadata: &Metadata::new(),
            },
            expiry,
        )
        .await
    }

    /// [`Presigner::put_object`] with the object's CRC32C (base64) and user
    /// metadata signed in too: S3 refuses bytes whose checksum differs, and
    /// the client must send the metadata headers exactly as answered.
    pub async fn put_object_with(
        &self,
        put: &ObjectPut<'_>,
        expiry: Duration,
    ) -> Result<SignedUrl> {
        let length = i64::try_from(put.content_length).map_err(|_| {
            Error::internal(format!("{} bytes cannot be signed", put.content_length))
        })?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(put.key)
            .content_type(put.content_type)
            .content_length(length)
            .set_checksum_crc32_c(put.crc32c.map(str::to_string))
            .set_metadata(
                (!put.metadata.is_empty()).then(|| put.metadata.clone().into_iter().collect()),
            )
            .presigned(Self::config(expiry)?)
            .await
            .map_err(|e| Error::internal(format!("presigning PutObject: {e}")))?;
        let mut headers = signed_headers(&req);
        headers.remove("content-length");
        Ok(SignedUrl {
            url: req.uri().to_string(),
            expires: expiry.as_secs(),
            headers,
        })
    }

    /// A URL to GET the object at `key` within `expiry`; with `filename`, S3
    /// answers it as an attachment of that name (a browser saves it so).
    pub async fn get_object(
        &self,
        key: &str,
        filename: Option<&str>,
        expiry: Duration,
    ) -> Result<SignedUrl> {
        let disposition = filename.map(|f| {
            let mut encoded = String::with_capacity(f.len());
            for b in f.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    encoded.push(b as char);
                } else {
                    encoded.push_str(&format!("%{b:02X}"));
                }
            }
            format!("attachment; filename*=UTF-8''{encoded}")
        });
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(disposition)
            .presigned(Self::config(expiry)?)
            .await
            .map_err(|e| Error::internal(format!("presigning GetObject: {e}")))?;
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
        let base = self.endpoint().await?.base();
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
    /// so part URLs and POST forms go where the SDK would send requests.
    async fn endpoint(&self) -> Result<&Endpoint> {
        self.endpoint
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
                let base = base.strip_suffix(probe).ok_or_else(|| {
                    Error::internal(format!("unexpected presigned URL shape: {base}"))
                })?;
                Endpoint::parse(base)
            })
            .await
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
        let url = self
            .endpoint()
            .await?
            .base()
            .trim_end_matches('/')
            .to_string();
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
