//! SigV4 checks for the loopback AWS stand-ins: a request's signature is
//! recomputed from the known secret and compared, as AWS does.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// How far a request's `X-Amz-Date` may be from now, as on AWS.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The credentials and scope a stand-in accepts.
pub(crate) struct Signer<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    /// The signing name, e.g. `events`, `secretsmanager`.
    pub service: &'a str,
}

impl Signer<'_> {
    /// Recomputes the request's SigV4 signature over the headers it says it
    /// signed, and compares; the error says what was wrong.
    pub(crate) fn verify(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
    ) -> Result<(), String> {
        let auth = parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("no Authorization header")?;
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("not AWS4-HMAC-SHA256")?;
        let field = |name: &str| {
            rest.split(',')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .ok_or(format!("no {name}"))
        };
        let credential = field("Credential")?;
        let signed_headers = field("SignedHeaders")?;
        let signature = field("Signature")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, _date, region, service, "aws4_request"] = scope[..] else {
            return Err(format!("malformed credential scope {credential}"));
        };
        if key != self.access_key {
            return Err(format!("unknown access key {key}"));
        }
        if region != self.region || service != self.service {
            return Err(format!("signed for {region}/{service}"));
        }
        let amz_date = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or("no X-Amz-Date")?;
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let when: SystemTime = time::PrimitiveDateTime::parse(amz_date, format)
            .map_err(|e| format!("X-Amz-Date {amz_date:?}: {e}"))?
            .assume_utc()
            .into();
        let skew = when
            .duration_since(SystemTime::now())
            .or_else(|e| Ok::<_, String>(e.duration()))?;
        if skew > MAX_SKEW {
            return Err("X-Amz-Date too far from now".into());
        }
        let mut headers = vec![];
        for name in signed_headers.split(';') {
            let value = parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(format!("signed header {name} is missing"))?;
            headers.push((name, value));
        }
        let uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let identity =
            Credentials::new(self.access_key, self.secret_key, None, None, "stand-in").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(when)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            parts.method.as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (_, expected) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        if expected != signature {
            return Err("the signature does not match".into());
        }
        Ok(())
    }
}
