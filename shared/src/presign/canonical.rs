//! UploadPart's SigV4 canonical request and string to sign, hashed once up to a part's own values.

use super::key::SigningKey;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// S3 never hashes a presigned body: the client's bytes are not known yet.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The pieces every part of one upload shares, already percent-encoded where
/// the URL encodes them.
pub(super) struct Canonical<'a> {
    /// The URL's path: the bucket prefix and the encoded key.
    pub path: &'a str,
    pub amz_date: &'a str,
    pub expires: &'a str,
    /// Signed header names, sorted, joined with `;`.
    pub signed_headers: &'a str,
    /// The same as the URL's query carries them (`;` as `%3B`).
    pub signed_headers_param: &'a str,
    /// The encoded upload id.
    pub upload_id: &'a str,
    /// Whether `content-length` is signed.
    pub sized: bool,
    /// The `x-amz-checksum-*` header signed, if any.
    pub checksum_header: Option<&'a str>,
    pub host: &'a str,
}

/// One part's own values in its canonical request.
pub(super) struct PartValues<'a> {
    pub part_number: &'a str,
    /// Present exactly when the template signs `content-length`.
    pub content_length: Option<&'a str>,
    /// Present exactly when the template signs a checksum header.
    pub checksum: Option<&'a str>,
}

/// The canonical request with the part's values left out, and the string to
/// sign up to the canonical request's hash. Everything before the part
/// number is hashed once (SHA-256 state and HMAC state are cloned for each
/// part), so a part costs only its own few blocks: with a Lambda's 1 KB
/// session token in the query, that is a tenth of the whole request.
#[derive(Clone)]
pub(super) struct Template {
    /// The canonical request hashed through `&partNumber=`.
    head: Sha256,
    /// The text after the part number, after the content length and after
    /// the checksum value (the last two only when they are signed).
    after: Vec<String>,
    /// The signing key's HMAC, having taken the string to sign up to the hash.
    string_to_sign: Hmac<Sha256>,
    sized: bool,
    checked: bool,
}

impl Template {
    /// The canonical request's query is in byte order of the names (`X-Amz-*`
    /// before `partNumber`, `uploadId`, `x-id`), so the part number is its
    /// first value that differs between parts; its headers are in name order:
    /// `content-length`, `host`, then any `x-amz-checksum-*`.
    pub fn new(c: &Canonical<'_>, key: &SigningKey) -> Template {
        // Hashed as written: the head holds the session token, most of the request.
        let mut head = Sha256::new();
        for piece in [
            "PUT\n",
            c.path,
            "\nX-Amz-Algorithm=",
            ALGORITHM,
            "&X-Amz-Credential=",
            &key.credential_param,
            "&X-Amz-Date=",
            c.amz_date,
            "&X-Amz-Expires=",
            c.expires,
        ] {
            head.update(piece);
        }
        if let Some(token) = &key.token_param {
            head.update("&X-Amz-Security-Token=");
            head.update(token);
        }
        for piece in [
            "&X-Amz-SignedHeaders=",
            c.signed_headers_param,
            "&partNumber=",
        ] {
            head.update(piece);
        }

        let mut after = vec![String::with_capacity(
            c.upload_id.len() + c.host.len() + 2 * c.signed_headers.len() + 96,
        )];
        let text = |after: &mut Vec<String>, s: &str| after.last_mut().expect("one").push_str(s);
        for piece in ["&uploadId=", c.upload_id, "&x-id=UploadPart\n"] {
            text(&mut after, piece);
        }
        if c.sized {
            text(&mut after, "content-length:");
            after.push("\n".to_string());
        }
        for piece in ["host:", c.host, "\n"] {
            text(&mut after, piece);
        }
        if let Some(name) = c.checksum_header {
            text(&mut after, name);
            text(&mut after, ":");
            after.push("\n".to_string());
        }
        for piece in ["\n", c.signed_headers, "\n", UNSIGNED_PAYLOAD] {
            text(&mut after, piece);
        }

        let mut string_to_sign = key.mac();
        for piece in [ALGORITHM, "\n", c.amz_date, "\n", &key.scope, "\n"] {
            string_to_sign.update(piece.as_bytes());
        }
        Template {
            head,
            after,
            string_to_sign,
            sized: c.sized,
            checked: c.checksum_header.is_some(),
        }
    }

    /// The part's signature, as lowercase hex. A value the template does not
    /// sign is ignored; the caller gives exactly the ones it signs.
    pub fn signature(&self, values: &PartValues<'_>) -> [u8; 64] {
        let mut h = self.head.clone();
        h.update(values.part_number);
        let mut after = self.after.iter();
        h.update(after.next().expect("the text after the part number"));
        for (signed, value) in [
            (self.sized, values.content_length),
            (self.checked, values.checksum),
        ] {
            if signed {
                h.update(value.unwrap_or_default());
                h.update(after.next().expect("one piece per value"));
            }
        }
        let mut hash = [0u8; 64];
        hex::encode_to_slice(h.finalize(), &mut hash).expect("64 hex digits");
        let mut mac = self.string_to_sign.clone();
        mac.update(&hash);
        let mut out = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut out).expect("64 hex digits");
        out
    }
}

/// `YYYYMMDDTHHMMSSZ` (UTC), SigV4's `X-Amz-Date`; its first 8 characters
/// are the signing key's date.
pub fn amz_date(now: SystemTime) -> String {
    let t = time::OffsetDateTime::from(now);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    let (hh, mm, ss) = t.to_hms();
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_the_signing_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(amz_date(SystemTime::UNIX_EPOCH), "19700101T000000Z");
    }
}
