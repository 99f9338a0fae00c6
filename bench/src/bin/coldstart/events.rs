//! Real first events for each function, made from the samples in `events/`
//! for uploads that really exist on the local stack, and the check that the
//! function's answer is a success (a failure measured fast is no figure).

use partwise::Context;
use partwise::api::{self, Function};
use serde_json::{Value, json};

const INITIATE: &str = include_str!("../../../../events/initiate.json");
const SIGN_PART: &str = include_str!("../../../../events/sign-part.json");
const LIST_PARTS: &str = include_str!("../../../../events/list-parts.json");
const COMPLETE: &str = include_str!("../../../../events/complete.json");
const ABORT: &str = include_str!("../../../../events/abort.json");
const ISSUE_GRANT: &str = include_str!("../../../../events/issue-grant.json");
const SWEEP: &str = include_str!("../../../../events/sweep-manual.json");
const NOTIFY: &str = include_str!("../../../../events/notify.json");
const SETTLE: &str = include_str!("../../../../events/settle-object-created.json");

/// Bytes of the one part of an upload made for `complete`.
const PART_BYTES: usize = 1024;

fn sample(text: &str) -> Value {
    serde_json::from_str(text).expect("events/*.json are JSON")
}

/// An upload created through the real initiate handler, in process.
pub struct Upload {
    pub upload_id: String,
    pub key: String,
}

/// Creates an upload of `size` bytes as the sample event's caller.
pub async fn create(ctx: &Context, size: u64) -> Result<Upload, String> {
    let mut e = sample(INITIATE);
    e["body"] =
        json!({"filename": "cold-start.bin", "type": "application/octet-stream", "size": size})
            .to_string()
            .into();
    let r = api::handle(ctx, Function::Initiate, from_value(e)?).await;
    let body: Value = serde_json::from_slice(r.body.as_ref().map_or(&[][..], |b| b.as_ref()))
        .map_err(|e| e.to_string())?;
    if r.status_code != 200 {
        return Err(format!("initiate: {} {body}", r.status_code));
    }
    Ok(Upload {
        upload_id: body["uploadId"].as_str().unwrap_or_default().into(),
        key: body["key"].as_str().unwrap_or_default().into(),
    })
}

fn from_value(e: Value) -> Result<aws_lambda_events::apigw::ApiGatewayV2httpRequest, String> {
    serde_json::from_value(e).map_err(|e| e.to_string())
}

/// Points a sample API event at `up`: path parameter, paths, and the `key` query.
fn for_upload(mut e: Value, up: &Upload, part: Option<u32>) -> Value {
    let mut path = format!("/s3/multipart/{}", up.upload_id);
    e["pathParameters"]["uploadId"] = up.upload_id.clone().into();
    if let Some(n) = part {
        e["pathParameters"]["partNumber"] = n.to_string().into();
        path = format!("{path}/{n}");
    } else if e["routeKey"]
        .as_str()
        .is_some_and(|r| r.ends_with("/complete"))
    {
        path = format!("{path}/complete");
    }
    e["rawPath"] = path.clone().into();
    e["requestContext"]["http"]["path"] = path.into();
    e["queryStringParameters"] = json!({"key": up.key});
    e["rawQueryString"] = format!("key={}", encode(&up.key)).into();
    e
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first event for `binary`, prepared on the stack (`shared` is an upload
/// the read-only functions may all use). Each `complete` and `abort` gets an
/// upload of its own, since it ends it.
pub async fn first_event(binary: &str, ctx: &Context, shared: &Upload) -> Result<Value, String> {
    Ok(match binary {
        "initiate" | "hello-lambda" => sample(INITIATE),
        "sign-part" => for_upload(sample(SIGN_PART), shared, Some(1)),
        "list-parts" => for_upload(sample(LIST_PARTS), shared, None),
        "abort" => for_upload(sample(ABORT), &create(ctx, 1 << 20).await?, None),
        "complete" => {
            let up = create(ctx, PART_BYTES as u64).await?;
            let etag = ctx
                .storage
                .client()
                .upload_part()
                .bucket(ctx.storage.bucket())
                .key(&up.key)
                .upload_id(&up.upload_id)
                .part_number(1)
                .body(vec![7u8; PART_BYTES].into())
                .send()
                .await
                .map_err(|e| format!("upload part: {e:?}"))?
                .e_tag
                .unwrap_or_default();
            let mut e = for_upload(sample(COMPLETE), &up, None);
            e["body"] = json!({"parts": [{"PartNumber": 1, "ETag": etag}]})
                .to_string()
                .into();
            e
        }
        "sweep" => sample(SWEEP),
        "notify" => sample(NOTIFY),
        // Its key is no tracked upload's: settled as unknown, nothing changed.
        "settle" => sample(SETTLE),
        other => return Err(format!("no first event for {other}")),
    })
}

/// `POST /grants` (served by `initiate`): the one call that needs the grant keys.
pub fn issue_grant() -> Value {
    sample(ISSUE_GRANT)
}

/// Whether `answer` is a success for `binary`, or what was wrong.
pub fn check(binary: &str, answer: &Value) -> Result<(), String> {
    let ok = match binary {
        "hello-lambda" => true,
        "notify" => answer["batchItemFailures"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "sweep" => answer.is_object(),
        "settle" => answer.is_array(),
        _ => answer["statusCode"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{binary} answered {answer}"))
    }
}
