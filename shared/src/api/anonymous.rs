//! Anonymous mode: each visitor without identity is an owner of their own.
//!
//! Uppy's plain `companionEndpoint` sends nothing that tells two visitors
//! apart (no cookie, no header), so on the plain routes an anonymous caller
//! is identified by what only they were told:
//! - starting something (`POST /s3/multipart`, `GET /s3/params`, `POST
//!   /grants`) mints a fresh owner, `anon-` and 128 random bits in hex, so
//!   the new key (or grant) is the visitor's alone;
//! - acting on an upload (sign, list parts, status, complete, abort) takes
//!   the owner from the `key` query parameter Uppy sends with each of these
//!   calls: the key's owner segment is that fresh owner, so only someone the
//!   key was given to can name it, and the upload id alone is not enough;
//! - the uploads list has no key to go by, so it needs a grant
//!   (`/g/{grant}/s3/multipart`), whose owner is one visitor's too.
//!
//! So Uppy's plain mode works as before, and no visitor can list, read or
//! abort another's upload without having been handed its key.

use super::Operation;
use super::request::{Request, set_owner};
use crate::Context;
use crate::error::{Error, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

/// Starts every owner minted for an anonymous visitor.
pub const OWNER_PREFIX: &str = "anon-";
/// Random bits in a minted owner: never guessed, never shared by two visitors.
const OWNER_BYTES: usize = 16;

/// A fresh anonymous owner: `anon-` and 32 lowercase hex digits.
pub fn fresh_owner() -> Result<String> {
    let mut bits = [0u8; OWNER_BYTES];
    getrandom::fill(&mut bits).map_err(Error::internal)?;
    Ok(format!("{OWNER_PREFIX}{}", hex::encode(bits)))
}

/// Whether `owner` is one [`fresh_owner`] could have minted.
pub fn is_anonymous_owner(owner: &str) -> bool {
    owner.strip_prefix(OWNER_PREFIX).is_some_and(|h| {
        h.len() == 2 * OWNER_BYTES && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The anonymous owner whose segment `key` carries under `prefix`, if any.
/// Minted owners are plain characters, so their segment is the owner itself.
pub fn owner_in_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let segment = key.strip_prefix(prefix)?.split('/').next()?;
    is_anonymous_owner(segment).then_some(segment)
}

/// `event` with the owner an anonymous caller of `operation` acts as (see
/// the module's comment), or the 401 that says how to get one. Callers
/// with an identity of their own (a token, IAM) are left as they are.
pub(super) fn identify(
    ctx: &Context,
    operation: Operation,
    event: &ApiGatewayV2httpRequest,
) -> Result<Option<Box<ApiGatewayV2httpRequest>>> {
    let req = Request::new(event);
    if req.owner(false).is_ok() {
        return Ok(None);
    }
    let owner = match operation {
        Operation::Create | Operation::PostForm | Operation::StartPuts | Operation::IssueGrant => {
            fresh_owner()?
        }
        Operation::ListUploads => {
            return Err(Error::Unauthorized(
                "anonymous visitors list their uploads through a grant: \
                 POST /grants, then GET {endpoint}/s3/multipart"
                    .into(),
            ));
        }
        Operation::Quota => {
            return Err(Error::Unauthorized(
                "anonymous visitors see their quota through a grant: \
                 POST /grants, then GET {endpoint}/quota"
                    .into(),
            ));
        }
        Operation::SignPart
        | Operation::SignBatch
        | Operation::SignBatchChecked
        | Operation::ListParts
        | Operation::Status
        | Operation::Complete
        | Operation::Abort
        | Operation::Download => req
            .query("key")
            .and_then(|k| owner_in_key(&ctx.config.key_prefix, &k).map(str::to_string))
            .ok_or_else(|| {
                Error::Unauthorized(
                    "anonymous callers name the upload's key (?key=, as Uppy does), \
                     or use a grant (POST /grants)"
                        .into(),
                )
            })?,
    };
    // Boxed: held across the handler's awaits, an event inline would grow
    // every handler's future by its size (debug builds' stacks feel it).
    let mut event = Box::new(event.clone());
    set_owner(&mut event, owner);
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_owners_are_distinct_and_recognised() {
        let (a, b) = (fresh_owner().unwrap(), fresh_owner().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), OWNER_PREFIX.len() + 32);
        assert!(is_anonymous_owner(&a) && is_anonymous_owner(&b));
        assert_eq!(crate::keys::owner_segment(&a), a, "its own key segment");
        for not in [
            "anonymous",
            "anon-",
            "anon-XYZ",
            "alice",
            &a[..a.len() - 1],
            &a.to_uppercase(),
            &format!("{a}0"),
        ] {
            assert!(!is_anonymous_owner(not), "{not}");
        }
    }

    #[test]
    fn the_owner_comes_from_the_keys_segment_under_the_prefix() {
        let a = fresh_owner().unwrap();
        let key = format!("uploads/{a}/0191/cat.jpg");
        assert_eq!(owner_in_key("uploads/", &key), Some(a.as_str()));
        assert_eq!(owner_in_key("other/", &key), None);
        assert_eq!(owner_in_key("uploads/", "uploads/alice/0191/cat.jpg"), None);
        assert_eq!(
            owner_in_key("uploads/", "uploads/anonymous/0191/cat.jpg"),
            None
        );
        assert_eq!(owner_in_key("", &format!("{a}/x")), Some(a.as_str()));
    }
}
