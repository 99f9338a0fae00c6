//! The presigned UploadPart URL: the bucket's endpoint, one part's request, and the URL put together.

use super::SignedUrl;
use super::canonical::{ALGORITHM, Canonical, amz_date};
use super::encode;
use super::key::SigningKey;
use crate::error::{Error, Result};
use crate::storage::PartChecksum;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// SigV4 refuses presigned URLs valid for more than a week.
const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the bucket is: its base URL as the SDK addresses it, path-style
/// (`http://127.0.0.1:3900/bucket/`) or virtual-host (`https://bucket.s3.amazonaws.com/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL, ending in `/`.
    base: String,
    /// Length of `scheme://authority` in `base`.
    origin_len: usize,
    /// The `host` header as signed: the authority without a default port.
    host: String,
}

impl Endpoint {
    /// Parses a bucket base URL (`scheme://authority/optional/prefix/`).
    pub fn parse(base: &str) -> Result<Endpoint> {
        let bad = || Error::internal(format!("unexpected bucket URL shape: {base}"));
        let (scheme, rest) = base.split_once("://").ok_or_else(bad)?;
        let authority_len = rest.find('/').ok_or_else(bad)?;
        if !base.ends_with('/') || authority_len == 0 {
            return Err(bad());
        }
        let authority = &rest[..authority_len];
        let host = match (scheme, authority.rsplit_once(':')) {
            ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h,
            _ => authority,
        };
        Ok(Endpoint {
            base: base.to_string(),
            origin_len: scheme.len() + 3 + authority_len,
            host: host.to_string(),
        })
    }

    /// The bucket's base URL, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// One part to presign a PUT for.
#[derive(Debug, Clone, Copy)]
pub struct PartRequest<'a> {
    pub key: &'a str,
    pub upload_id: &'a str,
    pub part_number: u32,
    /// Signed in as `x-amz-checksum-*`: S3 refuses the PUT without it, and
    /// bytes whose checksum differs.
    pub checksum: Option<&'a PartChecksum>,
    /// Signed in as `content-length`: S3 refuses a body of any other size.
    pub content_length: Option<u64>,
}

/// What every URL signed at one moment shares: `X-Amz-Date` and `X-Amz-Expires`.
#[derive(Debug, Clone)]
pub struct Stamp {
    amz_date: String,
    expires: String,
    expiry: Duration,
}

impl Stamp {
    /// URLs signed at `now`, valid for `expiry` (at most a week, as SigV4 allows).
    pub fn new(now: SystemTime, expiry: Duration) -> Result<Stamp> {
        if expiry > MAX_EXPIRY {
            return Err(Error::internal(format!(
                "presigned URLs last at most a week, not {expiry:?}"
            )));
        }
        Ok(Stamp {
            amz_date: amz_date(now),
            expires: expiry.as_secs().to_string(),
            expiry,
        })
    }
}

/// The presigned URL for `part`, signed at `now`, valid for `expiry`:
/// byte for byte what `aws-sigv4` makes of the SDK's UploadPart request.
pub fn presign(
    endpoint: &Endpoint,
    key: &SigningKey,
    now: SystemTime,
    expiry: Duration,
    part: &PartRequest<'_>,
) -> Result<SignedUrl> {
    Ok(presign_stamped(
        endpoint,
        key,
        &Stamp::new(now, expiry)?,
        part,
    ))
}

/// [`presign`] with the date and expiry already formatted, for many parts at once.
pub fn presign_stamped(
    endpoint: &Endpoint,
    key: &SigningKey,
    stamp: &Stamp,
    part: &PartRequest<'_>,
) -> SignedUrl {
    let (amz_date, expires) = (&stamp.amz_date, &stamp.expires);
    let part_number = part.part_number.to_string();
    let length = part.content_length.map(|n| n.to_string());

    // Signed headers besides `host`, in name order: `content-length` sorts
    // before `host`, every `x-amz-checksum-*` after.
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
    if let Some(len) = &length {
        headers.push(("content-length", len));
    }
    if let Some(c) = part.checksum {
        headers.push((c.algorithm.header(), &c.value));
    }
    let signed_headers = match (&length, part.checksum) {
        (None, None) => "host".to_string(),
        (Some(_), None) => "content-length;host".to_string(),
        (None, Some(c)) => format!("host;{}", c.algorithm.header()),
        (Some(_), Some(c)) => format!("content-length;host;{}", c.algorithm.header()),
    };

    let mut url = String::with_capacity(
        endpoint.base.len()
            + part.key.len() * 3
            + part.upload_id.len()
            + key.credential_param.len()
            + key.token_param.as_ref().map_or(0, String::len)
            + 256,
    );
    url.push_str(&endpoint.base);
    encode::path(&mut url, part.key);
    let path_end = url.len();
    url.push_str("?x-id=UploadPart&partNumber=");
    url.push_str(&part_number);
    url.push_str("&uploadId=");
    let id_start = url.len();
    encode::query_value(&mut url, part.upload_id);
    let id_end = url.len();

    let string_to_sign = Canonical {
        path: &url[endpoint.origin_len..path_end],
        amz_date,
        expires,
        signed_headers: &signed_headers,
        part_number: &part_number,
        upload_id: &url[id_start..id_end],
        headers: &headers,
        host: &endpoint.host,
    }
    .string_to_sign(key);
    let signature = key.sign(&string_to_sign);

    for piece in [
        "&X-Amz-Algorithm=",
        ALGORITHM,
        "&X-Amz-Credential=",
        &key.credential_param,
        "&X-Amz-Date=",
        amz_date,
        "&X-Amz-Expires=",
        expires,
        "&X-Amz-SignedHeaders=",
    ] {
        url.push_str(piece);
    }
    url.push_str(&signed_headers.replace(';', "%3B"));
    url.push_str("&X-Amz-Signature=");
    url.push_str(std::str::from_utf8(&signature).expect("hex is ASCII"));
    if let Some(token) = &key.token_param {
        url.push_str("&X-Amz-Security-Token=");
        url.push_str(token);
    }

    // `content-length` is left out of the headers to send: clients set it
    // themselves from the body (browsers refuse to let a page set it).
    let headers = part
        .checksum
        .map(|c| BTreeMap::from([(c.algorithm.header().to_string(), c.value.clone())]))
        .unwrap_or_default();
    SignedUrl {
        url,
        expires: stamp.expiry.as_secs(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_sign_the_host_without_a_default_port() {
        let e = Endpoint::parse("http://127.0.0.1:3900/bucket/").unwrap();
        assert_eq!((e.host.as_str(), e.origin_len), ("127.0.0.1:3900", 21));
        let e = Endpoint::parse("https://b.s3.us-east-1.amazonaws.com:443/").unwrap();
        assert_eq!(e.host, "b.s3.us-east-1.amazonaws.com");
        let e = Endpoint::parse("http://b.s3.localhost:80/").unwrap();
        assert_eq!(e.host, "b.s3.localhost");
        for bad in [
            "127.0.0.1/bucket/",
            "http://host",
            "http:///b/",
            "http://h/b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
