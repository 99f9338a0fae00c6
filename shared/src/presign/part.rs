//! The presigned UploadPart URL: the bucket's endpoint, one part's request, and the URL put together.

use super::SignedUrl;
use super::canonical::{ALGORITHM, Canonical, PartValues, Template, amz_date};
use super::encode;
use super::key::SigningKey;
use super::sha::Scratch;
use crate::error::{Error, Result};
use crate::model::ChecksumAlgorithm;
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
    /// `base` is printable ASCII without `"` or `\`.
    plain: bool,
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
            plain: base
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
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

/// [`presign`] with the date and expiry already formatted: one part (many
/// parts of one upload sign through one [`UploadParts`]).
pub fn presign_stamped(
    endpoint: &Endpoint,
    key: &SigningKey,
    stamp: &Stamp,
    part: &PartRequest<'_>,
) -> SignedUrl {
    UploadParts::new(endpoint, key, stamp, part).sign(part)
}

/// Parts of one upload signed at one moment, each with a signed size or
/// not, and with a checksum of one algorithm or none, as the first part
/// given: the URL and the canonical request are built once up to the
/// part's own values, so each part costs only its number, size and checksum
/// hashed and written. A part of another shape or upload is signed from
/// scratch, so the answer never depends on the order of the parts.
#[derive(Clone)]
pub struct UploadParts<'a> {
    endpoint: &'a Endpoint,
    key: &'a SigningKey,
    stamp: &'a Stamp,
    object: String,
    upload_id: String,
    sized: bool,
    algorithm: Option<ChecksumAlgorithm>,
    template: Template,
    /// The URL through `partNumber=`.
    url_head: String,
    /// From `&uploadId=` through `X-Amz-Signature=`.
    url_mid: String,
    /// `X-Amz-Security-Token`'s value, if any.
    token: Option<&'a str>,
}

impl<'a> UploadParts<'a> {
    /// Ready to sign parts shaped like `like`.
    pub fn new(
        endpoint: &'a Endpoint,
        key: &'a SigningKey,
        stamp: &'a Stamp,
        like: &PartRequest<'_>,
    ) -> Self {
        let sized = like.content_length.is_some();
        let algorithm = like.checksum.map(|c| c.algorithm);
        let checksum_header = algorithm.map(ChecksumAlgorithm::header);
        // Signed header names in name order: `content-length` sorts before
        // `host`, every `x-amz-checksum-*` after.
        let mut signed_headers = String::with_capacity(48);
        if sized {
            signed_headers.push_str("content-length;");
        }
        signed_headers.push_str("host");
        if let Some(name) = checksum_header {
            signed_headers.push(';');
            signed_headers.push_str(name);
        }

        let signed_headers_param = signed_headers.replace(';', "%3B");

        let mut url_head = String::with_capacity(endpoint.base.len() + like.key.len() * 3 + 32);
        url_head.push_str(&endpoint.base);
        encode::path(&mut url_head, like.key);
        let path_end = url_head.len();
        url_head.push_str("?x-id=UploadPart&partNumber=");

        let mut url_mid =
            String::with_capacity(like.upload_id.len() + key.credential_param.len() + 160);
        url_mid.push_str("&uploadId=");
        encode::query_value(&mut url_mid, like.upload_id);
        let id_end = url_mid.len();

        let template = Template::new(
            &Canonical {
                path: &url_head[endpoint.origin_len..path_end],
                amz_date: &stamp.amz_date,
                expires: &stamp.expires,
                signed_headers: &signed_headers,
                signed_headers_param: &signed_headers_param,
                upload_id: &url_mid["&uploadId=".len()..id_end],
                sized,
                checksum_header,
                host: &endpoint.host,
            },
            key,
        );
        for piece in [
            "&X-Amz-Algorithm=",
            ALGORITHM,
            "&X-Amz-Credential=",
            &key.credential_param,
            "&X-Amz-Date=",
            &stamp.amz_date,
            "&X-Amz-Expires=",
            &stamp.expires,
            "&X-Amz-SignedHeaders=",
            &signed_headers_param,
            "&X-Amz-Signature=",
        ] {
            url_mid.push_str(piece);
        }
        UploadParts {
            endpoint,
            key,
            stamp,
            object: like.key.to_string(),
            upload_id: like.upload_id.to_string(),
            sized,
            algorithm,
            template,
            url_head,
            url_mid,
            token: key.token_param.as_deref(),
        }
    }

    /// Whether `part` is of this upload and shape, so it is signed from the
    /// template rather than from scratch.
    pub fn fits(&self, part: &PartRequest<'_>) -> bool {
        part.key == self.object
            && part.upload_id == self.upload_id
            && part.content_length.is_some() == self.sized
            && part.checksum.map(|c| c.algorithm) == self.algorithm
    }

    /// True when every URL these parts sign, of any shape, is printable
    /// ASCII without `"` or `\`, so it can be written into JSON as it is:
    /// all but the bucket's base URL (checked once) is percent-encoded,
    /// digits, hex or fixed ASCII.
    pub fn urls_are_plain(&self) -> bool {
        self.endpoint.plain
    }

    /// How long a URL these parts sign is, but for its part number's digits
    /// (and, for a part of another shape, its size's and checksum's).
    pub fn url_len(&self) -> usize {
        self.url_head.len()
            + self.url_mid.len()
            + 64
            + self
                .token
                .map_or(0, |t| "&X-Amz-Security-Token=".len() + t.len())
    }

    /// The URL to PUT `part`.
    pub fn sign(&self, part: &PartRequest<'_>) -> SignedUrl {
        let mut url = String::with_capacity(self.url_len() + 16);
        self.write_url(part, &mut url);
        // `content-length` is left out of the headers to send: clients set it
        // themselves from the body (browsers refuse to let a page set it).
        let headers = part
            .checksum
            .map(|c| BTreeMap::from([(c.algorithm.header().to_string(), c.value.clone())]))
            .unwrap_or_default();
        SignedUrl {
            url,
            expires: self.stamp.expiry.as_secs(),
            headers,
        }
    }

    /// Appends the URL to PUT `part` to `out`.
    pub fn write_url(&self, part: &PartRequest<'_>, out: &mut String) {
        self.write_one(part, out, &mut Scratch::default());
    }

    /// [`UploadParts::write_url`], padding hashes in `scratch`.
    fn write_one(&self, part: &PartRequest<'_>, out: &mut String, scratch: &mut Scratch) {
        if !self.fits(part) {
            return UploadParts::new(self.endpoint, self.key, self.stamp, part)
                .write_one(part, out, scratch);
        }
        let (mut number, mut length) = (itoa::Buffer::new(), itoa::Buffer::new());
        let values = values(part, &mut number, &mut length);
        let signature = self.template.signature(&values, scratch);
        self.write_signed(&values, &signature, out);
    }

    /// Appends each part's URL to `out`, with `before` written ahead of it
    /// and `after` behind it. Parts of this upload's shape are signed two at
    /// a time, each SHA-256 block beside the other's (1.7× faster than one by
    /// one in the presign bench); any other part from scratch.
    pub fn write_urls<'p>(
        &self,
        parts: impl IntoIterator<Item = PartRequest<'p>>,
        out: &mut String,
        mut before: impl FnMut(&mut String, &PartRequest<'p>),
        after: &str,
    ) {
        let scratch = &mut Scratch::default();
        let mut parts = parts.into_iter();
        while let Some(a) = parts.next() {
            match parts.next() {
                Some(b) if self.fits(&a) && self.fits(&b) => {
                    let mut buffers: [itoa::Buffer; 4] = Default::default();
                    let [number_a, length_a, number_b, length_b] = &mut buffers;
                    let values_a = values(&a, number_a, length_a);
                    let values_b = values(&b, number_b, length_b);
                    let signatures = self.template.signatures([&values_a, &values_b], scratch);
                    for (part, values, signature) in [
                        (&a, &values_a, &signatures[0]),
                        (&b, &values_b, &signatures[1]),
                    ] {
                        before(out, part);
                        self.write_signed(values, signature, out);
                        out.push_str(after);
                    }
                }
                b => {
                    for part in std::iter::once(a).chain(b) {
                        before(out, &part);
                        self.write_one(&part, out, scratch);
                        out.push_str(after);
                    }
                }
            }
        }
    }

    /// Appends the URL of the part with these values and this signature.
    fn write_signed(&self, values: &PartValues<'_>, signature: &[u8; 64], out: &mut String) {
        out.push_str(&self.url_head);
        out.push_str(values.part_number);
        out.push_str(&self.url_mid);
        out.push_str(std::str::from_utf8(signature).expect("hex is ASCII"));
        if let Some(token) = self.token {
            out.push_str("&X-Amz-Security-Token=");
            out.push_str(token);
        }
    }
}

/// A part's own values in its canonical request, its numbers written in the buffers given.
fn values<'a>(
    part: &PartRequest<'a>,
    number: &'a mut itoa::Buffer,
    length: &'a mut itoa::Buffer,
) -> PartValues<'a> {
    PartValues {
        part_number: number.format(part.part_number),
        content_length: part.content_length.map(|n| length.format(n)),
        checksum: part.checksum.map(|c| c.value.as_str()),
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

    #[test]
    fn urls_are_plain_only_when_no_piece_needs_json_escaping() {
        let creds = aws_credential_types::Credentials::new("AKID", "secret", None, None, "t");
        let key = SigningKey::derive(&creds, "20261126", "us-east-1", "s3");
        let stamp = Stamp::new(SystemTime::UNIX_EPOCH, Duration::from_secs(60)).unwrap();
        let part = PartRequest {
            key: "dir/a \"b\\c é.bin",
            upload_id: "id\"1",
            part_number: 1,
            checksum: None,
            content_length: Some(5),
        };
        let plain = Endpoint::parse("http://127.0.0.1:3900/bucket/").unwrap();
        let parts = UploadParts::new(&plain, &key, &stamp, &part);
        assert!(parts.urls_are_plain(), "the key and id are percent-encoded");
        let url = parts.sign(&part).url;
        assert!(!url.contains(['"', '\\', ' ']), "{url}");
        let odd = Endpoint::parse("http://127.0.0.1:3900/b\"ucket/").unwrap();
        assert!(!UploadParts::new(&odd, &key, &stamp, &part).urls_are_plain());
    }
}
