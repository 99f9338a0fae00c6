//! UploadPart's SigV4 canonical request and string to sign, hashed as they are written.

use super::key::SigningKey;
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// S3 never hashes a presigned body: the client's bytes are not known yet.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The pieces of one UploadPart request, already percent-encoded where the
/// URL encodes them.
pub(super) struct Canonical<'a> {
    /// The URL's path: the bucket prefix and the encoded key.
    pub path: &'a str,
    pub amz_date: &'a str,
    pub expires: &'a str,
    /// Signed header names, sorted, joined with `;`.
    pub signed_headers: &'a str,
    pub part_number: &'a str,
    /// The encoded upload id.
    pub upload_id: &'a str,
    /// Every signed header but `host`, sorted by name, lowercase.
    pub headers: &'a [(&'a str, &'a str)],
    pub host: &'a str,
}

impl Canonical<'_> {
    /// The SigV4 string to sign. The canonical request is fed to the hash
    /// piece by piece instead of being built as a string first; its query is
    /// in byte order of the names (`X-Amz-*` before `partNumber`, `uploadId`,
    /// `x-id`), and its headers are `host` among the others in name order.
    pub fn string_to_sign(&self, key: &SigningKey) -> Vec<u8> {
        let mut h = Sha256::new();
        for piece in [
            "PUT\n",
            self.path,
            "\nX-Amz-Algorithm=",
            ALGORITHM,
            "&X-Amz-Credential=",
            &key.credential_param,
            "&X-Amz-Date=",
            self.amz_date,
            "&X-Amz-Expires=",
            self.expires,
        ] {
            h.update(piece);
        }
        if let Some(token) = &key.token_param {
            h.update("&X-Amz-Security-Token=");
            h.update(token);
        }
        h.update("&X-Amz-SignedHeaders=");
        for (i, name) in self.signed_headers.split(';').enumerate() {
            if i > 0 {
                h.update("%3B");
            }
            h.update(name);
        }
        for piece in [
            "&partNumber=",
            self.part_number,
            "&uploadId=",
            self.upload_id,
            "&x-id=UploadPart\n",
        ] {
            h.update(piece);
        }
        let mut host_written = false;
        for (name, value) in self.headers {
            if !host_written && *name > "host" {
                write_header(&mut h, "host", self.host);
                host_written = true;
            }
            write_header(&mut h, name, value);
        }
        if !host_written {
            write_header(&mut h, "host", self.host);
        }
        for piece in ["\n", self.signed_headers, "\n", UNSIGNED_PAYLOAD] {
            h.update(piece);
        }

        let mut hash = [0u8; 64];
        hex::encode_to_slice(h.finalize(), &mut hash).expect("64 hex digits");
        let mut sts = Vec::with_capacity(ALGORITHM.len() + self.amz_date.len() + 140);
        for piece in [
            ALGORITHM.as_bytes(),
            b"\n",
            self.amz_date.as_bytes(),
            b"\n",
            key.scope.as_bytes(),
            b"\n",
            &hash,
        ] {
            sts.extend_from_slice(piece);
        }
        sts
    }
}

fn write_header(h: &mut Sha256, name: &str, value: &str) {
    h.update(name);
    h.update(":");
    h.update(value);
    h.update("\n");
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
