//! Part-URL signing: the hand-built presigner against aws-sdk-s3's `presigned()`
//! and `aws-sigv4` per URL, and 1,000 URLs through the batch route against one
//! DynamoDB round trip on the local stack (started here unless its variables are set).
//!
//!     cargo bench -p partwise-bench --bench presign

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use partwise::api::{self, Function};
use partwise::presign::{PartRequest, Presigner};
use partwise_local::Stack;
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

const EXPIRY: Duration = Duration::from_secs(3600);
const KEY: &str = "uploads/user-1/0192f2a4c1d37e8b9f00112233445566/holiday video.mp4";
const UPLOAD_ID: &str = "2~iCw_lDh8ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv";
const MIB: u64 = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Lambda-like credentials: temporary, with a session token.
fn credentials() -> Credentials {
    Credentials::new(
        "ASIAEXAMPLEEXAMPLE01",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some(format!("IQoJb3JpZ2luX2VjE{}", "A".repeat(600))),
        Some(SystemTime::now() + Duration::from_secs(6 * 3600)),
        "bench",
    )
}

/// One URL each way, for the same part, on real AWS endpoint resolution
/// (virtual-host addressing) and the same credentials.
fn per_url(c: &mut Criterion) {
    let rt = runtime();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials()))
        .build();
    let client = aws_sdk_s3::Client::new(&sdk);
    let presigner = Presigner::new(client.clone(), "partwise-bench-bucket", &sdk);
    let part = PartRequest {
        key: KEY,
        upload_id: UPLOAD_ID,
        part_number: 1234,
        checksum: None,
        content_length: None,
    };
    // The unsigned request the SDK builds, for aws-sigv4 to sign.
    let sdk_url = rt
        .block_on(
            client
                .upload_part()
                .bucket("partwise-bench-bucket")
                .key(KEY)
                .upload_id(UPLOAD_ID)
                .part_number(1234)
                .presigned(PresigningConfig::expires_in(EXPIRY).unwrap()),
        )
        .unwrap()
        .uri()
        .to_string();
    let unsigned = sdk_url[..sdk_url.find("&X-Amz-").unwrap()].to_string();
    let identity = credentials().into();

    let mut g = c.benchmark_group("part URL");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("partwise presigner", |b| {
        b.to_async(&rt).iter(|| async {
            presigner
                .upload_part(black_box(&part), EXPIRY)
                .await
                .unwrap()
        })
    });
    g.bench_function("aws-sdk-s3 presigned()", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .upload_part()
                .bucket("partwise-bench-bucket")
                .key(black_box(KEY))
                .upload_id(UPLOAD_ID)
                .part_number(1234)
                .presigned(PresigningConfig::expires_in(EXPIRY).unwrap())
                .await
                .unwrap()
                .uri()
                .to_string()
        })
    });
    g.bench_function("aws-sigv4 sign", |b| {
        b.iter(|| {
            let mut settings = SigningSettings::default();
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(EXPIRY);
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let signable = SignableRequest::new(
                "PUT",
                black_box(unsigned.as_str()),
                std::iter::empty(),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            let mut req = http::Request::builder()
                .method("PUT")
                .uri(unsigned.as_str())
                .body(())
                .unwrap();
            instructions.apply_to_request_http1x(&mut req);
            req.uri().to_string()
        })
    });
    g.finish();
}

/// An API Gateway event for `route_key` from `owner`.
fn event(
    route_key: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> ApiGatewayV2httpRequest {
    let raw_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (method, _) = route_key.split_once(' ').unwrap();
    let mut e = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query.join("&"),
        "headers": {"content-type": "application/json"},
        "queryStringParameters": query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.local", "requestId": "r",
            "routeKey": route_key, "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"sub": "bench-user"}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    if let Some(upload_id) = path.split('/').nth(3) {
        e["pathParameters"] = json!({ "uploadId": upload_id });
    }
    if let Some(b) = body {
        e["body"] = json!(b.to_string());
    }
    serde_json::from_value(e).unwrap()
}

fn function_of(route_key: &str) -> Function {
    api::ROUTES
        .iter()
        .find(|r| r.is(route_key))
        .expect("known route")
        .function
}

/// Answers `(status, body)` of one call through the handler.
async fn call(ctx: &partwise::Context, e: ApiGatewayV2httpRequest) -> (i64, Value) {
    let route_key = e.route_key.clone().unwrap_or_default();
    let resp = api::handle(ctx, function_of(&route_key), e).await;
    let body = match resp.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        _ => Value::Null,
    };
    (resp.status_code, body)
}

/// `iters` pairs of batch calls, a `thousand` then a `one` right after it,
/// each timed with its answer dropped inside its own timing (as criterion
/// drops other rows' answers); `count` says what of each pair is summed.
async fn timed_pairs(
    ctx: &partwise::Context,
    thousand: &dyn Fn() -> ApiGatewayV2httpRequest,
    one: &dyn Fn() -> ApiGatewayV2httpRequest,
    iters: u64,
    count: fn(Duration, Duration) -> Duration,
) -> Duration {
    let function = function_of("GET /s3/multipart/{uploadId}/batch");
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let thousand_status = api::handle(ctx, function, thousand()).await.status_code;
        let thousand_took = start.elapsed();
        let start = Instant::now();
        let one_status = api::handle(ctx, function, one()).await.status_code;
        timed += count(thousand_took, start.elapsed());
        assert_eq!((thousand_status, one_status), (200, 200));
    }
    timed
}

/// 1,000 part URLs (an upload declared as 1,000 parts of 5 MiB, so each
/// URL has its size signed in) through the batch route's handler, beside one
/// GetItem on the same table, in the same run.
fn batch_vs_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let stack = rt
        .block_on(Stack::from_env_or_start())
        .expect("local stack");
    // Signing as a Lambda does: with temporary credentials whose session
    // token (about 1 KB) goes into every URL and its canonical request.
    let mut ctx = stack.context().expect("context");
    let sdk = stack
        .sdk_config()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials()))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(ctx.config.s3_force_path_style)
            .build(),
    );
    ctx.presigner = Presigner::new(s3, &ctx.config.bucket, &sdk);
    let (status, created) = rt.block_on(call(
        &ctx,
        event(
            "POST /s3/multipart",
            "/s3/multipart",
            &[],
            Some(json!({"filename": "big.bin", "size": 1000 * 5 * MIB, "partSize": 5 * MIB})),
        ),
    ));
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["partCount"], 1000);
    let upload_id = created["uploadId"].as_str().unwrap().to_string();
    let batch_path = format!("/s3/multipart/{upload_id}/batch");
    let batch_of = |numbers: &'static str| {
        event(
            "GET /s3/multipart/{uploadId}/batch",
            &batch_path,
            &[("partNumbers", numbers)],
            None,
        )
    };
    let batch = || batch_of("1-1000");
    let (status, signed) = rt.block_on(call(&ctx, batch()));
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["presignedUrls"].as_object().unwrap().len(), 1000);
    let dynamodb = stack.dynamodb().clone();
    let table = ctx.config.table.clone();

    // DynamoDB Local is a JVM started moments ago: its JIT compiler works
    // through the first thousands of requests on one of the two cores. Give
    // it those requests before anything is timed (bounded in count and time).
    let warm_until = Instant::now() + Duration::from_secs(20);
    for _ in 0..3000 {
        if Instant::now() > warm_until {
            break;
        }
        let resp = rt.block_on(api::handle(
            &ctx,
            function_of("GET /s3/multipart/{uploadId}/batch"),
            batch_of("1"),
        ));
        assert_eq!(resp.status_code, 200);
    }
    let mut g = c.benchmark_group("1,000 part URLs vs one DynamoDB round trip");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    g.bench_function("batch route handler, 1,000 URLs", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = api::handle(
                &ctx,
                function_of("GET /s3/multipart/{uploadId}/batch"),
                batch(),
            )
            .await;
            assert_eq!(resp.status_code, 200);
            resp
        })
    });
    // Not the handler's: what `lambda_runtime` does with its answer before
    // sending it to the Runtime API, serde_json writing it out. Given the
    // handler's answer, serde_json checks each byte of the body for
    // characters to escape; given `api::wire`'s, it copies it.
    let answer = rt.block_on(api::handle(
        &ctx,
        function_of("GET /s3/multipart/{uploadId}/batch"),
        batch(),
    ));
    g.bench_function(
        "the 1,000-URL answer for the Runtime API, serde_json alone",
        |b| b.iter(|| serde_json::to_vec(black_box(&answer)).unwrap()),
    );
    g.bench_function(
        "the 1,000-URL answer for the Runtime API, through api::wire",
        |b| {
            b.iter_batched(
                || answer.clone(),
                |a| serde_json::to_vec(&api::wire::encode(a).unwrap()).unwrap(),
                BatchSize::SmallInput,
            )
        },
    );
    // The same call for one URL, each right after a 1,000-URL call not counted,
    // so DynamoDB Local sees requests at the batch's pace (it answers a
    // request that follows a pause more slowly than one in a back-to-back
    // stream): the difference from the row above is what the other 999 cost.
    g.bench_function("batch route handler, 1 URL, at the batch's pace", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (ctx, batch, batch_of) = (&ctx, &batch, &batch_of);
            async move { timed_pairs(ctx, batch, &|| batch_of("1"), iters, |_, one| one).await }
        })
    });
    // The same difference, paired: each 1,000-URL call is timed beside the
    // 1-URL call right after it, and only their difference is counted, so a
    // slow spell of DynamoDB Local (whose JIT compiler shares the two cores)
    // lands in both halves of a pair instead of in one row.
    g.bench_function("the other 999 URLs through the handler, paired", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (ctx, batch, batch_of) = (&ctx, &batch, &batch_of);
            async move {
                timed_pairs(ctx, batch, &|| batch_of("1"), iters, |thousand, one| {
                    thousand.saturating_sub(one)
                })
                .await
            }
        })
    });
    let part = |n| PartRequest {
        key: "uploads/bench-user/x/big.bin",
        upload_id: &upload_id,
        part_number: n,
        checksum: None,
        content_length: Some(5 * MIB),
    };
    // As the batch route writes them: two at a time, into one answer.
    g.bench_function("presigner alone, 1,000 URLs", |b| {
        b.to_async(&rt).iter(|| async {
            let signer = ctx.presigner.part_signer(EXPIRY).await.unwrap();
            let parts = signer.parts_like(&part(1));
            let mut out = String::with_capacity((parts.url_len() + 16) * 1000);
            parts.write_urls((1..=1000u32).map(part), &mut out, |_, _| {}, "\n");
            black_box(out)
        })
    });
    // The baseline beside it: one URL at a time, each its own string.
    g.bench_function("presigner alone, 1,000 URLs one at a time", |b| {
        b.to_async(&rt).iter(|| async {
            let signer = ctx.presigner.part_signer(EXPIRY).await.unwrap();
            let parts = signer.parts_like(&part(1));
            for n in 1..=1000u32 {
                black_box(parts.sign(&part(n)));
            }
        })
    });
    g.bench_function("DynamoDB GetItem (one round trip)", |b| {
        b.to_async(&rt).iter(|| async {
            dynamodb
                .get_item()
                .table_name(&table)
                .key(
                    "upload_id",
                    aws_sdk_dynamodb::types::AttributeValue::S(upload_id.clone()),
                )
                .consistent_read(true)
                .send()
                .await
                .unwrap()
        })
    });
    g.finish();
    rt.block_on(call(
        &ctx,
        event(
            "DELETE /s3/multipart/{uploadId}",
            &format!("/s3/multipart/{upload_id}"),
            &[],
            None,
        ),
    ));
}

criterion_group!(benches, per_url, batch_vs_round_trip);
criterion_main!(benches);
