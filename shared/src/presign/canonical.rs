//! UploadPart's SigV4 canonical request and string to sign, hashed once up to a part's own values.

use super::key::SigningKey;
use super::sha::{self, Midstate, Scratch};
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
/// number is hashed once (each part resumes from the saved SHA-256 states),
/// so a part costs only its own few blocks: with a Lambda's 1 KB session
/// token in the query, that is a tenth of the whole request.
#[derive(Clone)]
pub(super) struct Template {
    /// The canonical request hashed through `&partNumber=`.
    head: Midstate,
    /// The text after the part number, after the content length and after
    /// the checksum value (the last two only when they are signed).
    after: Vec<String>,
    /// The signing key's inner HMAC hash, having taken the string to sign
    /// up to the canonical request's hash.
    string_to_sign: Midstate,
    /// The signing key's outer HMAC hash.
    outer: Midstate,
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
        let mut head = Midstate::new();
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
            head.update(piece.as_bytes());
        }
        if let Some(token) = &key.token_param {
            head.update(b"&X-Amz-Security-Token=");
            head.update(token.as_bytes());
        }
        for piece in [
            "&X-Amz-SignedHeaders=",
            c.signed_headers_param,
            "&partNumber=",
        ] {
            head.update(piece.as_bytes());
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

        let mut string_to_sign = key.hmac().inner();
        for piece in [ALGORITHM, "\n", c.amz_date, "\n", &key.scope, "\n"] {
            string_to_sign.update(piece.as_bytes());
        }
        Template {
            head,
            after,
            string_to_sign,
            outer: key.hmac().outer().clone(),
            sized: c.sized,
            checked: c.checksum_header.is_some(),
        }
    }

    /// The part's signature, as lowercase hex. A value the template does not
    /// sign is ignored; the caller gives exactly the ones it signs.
    pub fn signature(&self, values: &PartValues<'_>, scratch: &mut Scratch) -> [u8; 64] {
        let hash = to_hex(&sha::finish(&self.head, &self.rest(values), scratch));
        let inner = sha::finish(&self.string_to_sign, &[&hash], scratch);
        to_hex(&sha::finish(&self.outer, &[&inner], scratch))
    }

    /// Two parts' signatures, each block of one hashed beside the other's (see [`sha`]).
    pub fn signatures(&self, [a, b]: [&PartValues<'_>; 2], scratch: &mut Scratch) -> [[u8; 64]; 2] {
        let hashes = sha::finish_two(
            (&self.head, &self.rest(a)),
            (&self.head, &self.rest(b)),
            scratch,
        )
        .map(|h| to_hex(&h));
        let [inner_a, inner_b] = sha::finish_two(
            (&self.string_to_sign, &[&hashes[0]]),
            (&self.string_to_sign, &[&hashes[1]]),
            scratch,
        );
        sha::finish_two(
            (&self.outer, &[&inner_a]),
            (&self.outer, &[&inner_b]),
            scratch,
        )
        .map(|s| to_hex(&s))
    }

    /// The canonical request from the part number on, in pieces.
    fn rest<'a>(&'a self, values: &PartValues<'a>) -> [&'a [u8]; 6] {
        let mut after = self.after.iter().map(String::as_bytes);
        let mut pieces: [&[u8]; 6] = [b""; 6];
        pieces[0] = values.part_number.as_bytes();
        pieces[1] = after.next().unwrap_or_default();
        let mut next = 2;
        for (signed, value) in [
            (self.sized, values.content_length),
            (self.checked, values.checksum),
        ] {
            if signed {
                pieces[next] = value.unwrap_or_default().as_bytes();
                pieces[next + 1] = after.next().unwrap_or_default();
                next += 2;
            }
        }
        pieces
    }
}

/// 32 bytes as 64 lowercase hex digits.
fn to_hex(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    hex::encode_to_slice(bytes, &mut out).expect("64 hex digits");
    out
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
