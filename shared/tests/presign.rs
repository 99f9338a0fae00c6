//! The hand-built part-URL presigner: byte for byte what aws-sdk-s3's
//! `presigned()` and `aws-sigv4` make of the same request (property tests),
//! its key cache following rotating credentials, and Garage accepting its
//! URLs over the wire, refusing a part whose size differs from the signed one.

mod common;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign as sigv4_sign,
};
use common::*;
use partwise::model::ChecksumAlgorithm;
use partwise::presign::{
    Endpoint, KeyCache, PartRequest, Presigner, SigningKey, UploadParts, presign_part,
};
use partwise::storage::PartChecksum;
use proptest::prelude::*;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BUCKET: &str = "bucket-1";

/// Where the SDK is pointed, and the bucket base URL it then addresses.
#[derive(Debug, Clone, Copy)]
enum Addressing {
    /// A local S3, path-style: `http://127.0.0.1:3900/bucket-1/`.
    PathStyle,
    /// A local S3, virtual-host: `http://bucket-1.s3.localhost:3900/`.
    VirtualHost,
    /// AWS's own endpoint resolution: `https://bucket-1.s3.eu-west-3.amazonaws.com/`.
    Aws,
}

fn sdk_client(addressing: Addressing, creds: &Credentials, region: &str) -> aws_sdk_s3::Client {
    let b = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .credentials_provider(creds.clone());
    let b = match addressing {
        Addressing::PathStyle => b
            .endpoint_url("http://127.0.0.1:3900")
            .force_path_style(true),
        Addressing::VirtualHost => b.endpoint_url("http://s3.localhost:3900"),
        Addressing::Aws => b,
    };
    aws_sdk_s3::Client::from_conf(b.build())
}

fn base_url(addressing: Addressing, region: &str) -> String {
    match addressing {
        Addressing::PathStyle => format!("http://127.0.0.1:3900/{BUCKET}/"),
        Addressing::VirtualHost => format!("http://{BUCKET}.s3.localhost:3900/"),
        Addressing::Aws => format!("https://{BUCKET}.s3.{region}.amazonaws.com/"),
    }
}

/// The SDK's presigned UploadPart for `part` at `now`: (url, signed headers but host).
fn sdk_presigned(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_s3::Client,
    part: &PartRequest<'_>,
    now: SystemTime,
    expiry: Duration,
) -> (String, Vec<(String, String)>) {
    let value = |a| {
        part.checksum
            .filter(|c| c.algorithm == a)
            .map(|c| c.value.clone())
    };
    let req = rt
        .block_on(
            client
                .upload_part()
                .bucket(BUCKET)
                .key(part.key)
                .upload_id(part.upload_id)
                .part_number(part.part_number as i32)
                .set_content_length(part.content_length.map(|n| n as i64))
                .set_checksum_crc32_c(value(ChecksumAlgorithm::Crc32c))
                .set_checksum_crc32(value(ChecksumAlgorithm::Crc32))
                .set_checksum_sha256(value(ChecksumAlgorithm::Sha256))
                .set_checksum_crc64_nvme(value(ChecksumAlgorithm::Crc64Nvme))
                .presigned(
                    PresigningConfig::builder()
                        .start_time(now)
                        .expires_in(expiry)
                        .build()
                        .unwrap(),
                ),
        )
        .unwrap();
    let headers = req
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .filter(|(k, _)| k != "host")
        .collect();
    (req.uri().to_string(), headers)
}

/// `aws-sigv4`'s presigning of the unsigned request `uri` with `headers`,
/// with S3's settings (no path normalization, no double encoding, unsigned payload).
fn sigv4_presigned(
    uri: &str,
    headers: &[(String, String)],
    creds: &Credentials,
    region: &str,
    now: SystemTime,
    expiry: Duration,
) -> String {
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expiry);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "PUT",
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sigv4_sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder().method("PUT").uri(uri);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let mut req = req.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    req.uri().to_string()
}

/// Ours, the SDK's and aws-sigv4's URL for the same part, time and credentials.
fn three_ways(
    rt: &tokio::runtime::Runtime,
    addressing: Addressing,
    creds: &Credentials,
    region: &str,
    part: &PartRequest<'_>,
    now: SystemTime,
    expiry: Duration,
) -> (String, String, String) {
    let date = &time::OffsetDateTime::from(now)
        .format(time::macros::format_description!("[year][month][day]"))
        .unwrap();
    let key = SigningKey::derive(creds, date, region, "s3");
    let endpoint = Endpoint::parse(&base_url(addressing, region)).unwrap();
    let ours = presign_part(&endpoint, &key, now, expiry, part).unwrap();
    let (sdk, headers) = sdk_presigned(
        rt,
        &sdk_client(addressing, creds, region),
        part,
        now,
        expiry,
    );
    let unsigned = &sdk[..sdk.find("&X-Amz-Algorithm=").expect("a presigned URL")];
    let sigv4 = sigv4_presigned(unsigned, &headers, creds, region, now, expiry);
    // The headers a client must send: the SDK's signed ones but content-length.
    let mut expected: Vec<_> = headers
        .into_iter()
        .filter(|(k, _)| k != "content-length")
        .collect();
    expected.sort();
    let sent: Vec<_> = ours.headers.clone().into_iter().collect();
    assert_eq!(sent, expected);
    (ours.url, sdk, sigv4)
}

/// Keys made of the characters that trip encoders up, and unicode.
fn key_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(" ".to_string()),
        Just("+".to_string()),
        Just("%".to_string()),
        Just("%2F".to_string()),
        Just("~".to_string()),
        Just("//".to_string()),
        Just("/".to_string()),
        Just("=&?#".to_string()),
        Just("é".to_string()),
        Just("日本語".to_string()),
        Just("😀".to_string()),
        "[a-zA-Z0-9._-]{1,12}",
        "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 1..24).prop_map(|p| p.concat())
}

fn checksum_strategy() -> impl Strategy<Value = Option<PartChecksum>> {
    prop::option::of((0..4usize, any::<[u8; 32]>()).prop_map(|(i, bytes)| {
        let algorithm = ChecksumAlgorithm::ALL[i];
        let value = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &bytes[..algorithm.digest_len()],
        );
        PartChecksum { algorithm, value }
    }))
}

fn creds_strategy() -> impl Strategy<Value = Credentials> {
    (
        "(AKIA|ASIA)[A-Z0-9]{16}",
        "[A-Za-z0-9/+]{40}",
        prop::option::of("[A-Za-z0-9/+=]{16,900}"),
    )
        .prop_map(|(ak, sk, token)| Credentials::new(ak, sk, token, None, "test"))
}

fn addressing_strategy() -> impl Strategy<Value = Addressing> {
    prop_oneof![
        Just(Addressing::PathStyle),
        Just(Addressing::VirtualHost),
        Just(Addressing::Aws)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn part_urls_are_byte_identical_to_the_sdk_and_aws_sigv4(
        // At most 1024 bytes, as S3 keys are; not blank, which the SDK takes
        // for a missing key (Partwise's keys always have a prefix).
        key in key_strategy().prop_filter("an S3 key", |k| k.len() <= 1024 && !k.trim().is_empty()),
        upload_id in "[A-Za-z0-9._~+/=-]{1,120}",
        part_number in 1u32..=10_000,
        checksum in checksum_strategy(),
        content_length in prop::option::of(1u64..=5 << 30),
        creds in creds_strategy(),
        addressing in addressing_strategy(),
        region in prop_oneof![Just("us-east-1"), Just("eu-west-3"), Just("ap-southeast-2")],
        secs in 946_684_800u64..4_102_444_800, // 2000 to 2100
        expiry in 1u64..=604_800,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let part = PartRequest {
            key: &key,
            upload_id: &upload_id,
            part_number,
            checksum: checksum.as_ref(),
            content_length,
        };
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        let (ours, sdk, sigv4) = three_ways(
            &rt, addressing, &creds, region, &part, now, Duration::from_secs(expiry),
        );
        prop_assert_eq!(&ours, &sdk);
        prop_assert_eq!(&ours, &sigv4);
    }

    /// A batch signs every part from one template built for the first; each
    /// URL must still be the one `aws-sigv4` makes of that part alone, in
    /// any mix of sizes, checksums and part numbers (a part shaped unlike
    /// the first is signed from scratch).
    #[test]
    fn parts_signed_from_one_template_match_aws_sigv4_one_by_one(
        key in key_strategy().prop_filter("an S3 key", |k| k.len() <= 1024 && !k.trim().is_empty()),
        upload_id in "[A-Za-z0-9._~+/=-]{1,120}",
        parts in prop::collection::vec(
            (1u32..=10_000, prop::option::of(1u64..=5 << 30), checksum_strategy()),
            1..6,
        ),
        creds in creds_strategy(),
        addressing in addressing_strategy(),
        secs in 946_684_800u64..4_102_444_800,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (region, expiry) = ("eu-west-3", Duration::from_secs(900));
        let now = UNIX_EPOCH + Duration::from_secs(secs);
        let stamp = &partwise::presign::Stamp::new(now, expiry).unwrap();
        let day = time::OffsetDateTime::from(now)
            .format(time::macros::format_description!("[year][month][day]"))
            .unwrap();
        let signing_key = SigningKey::derive(&creds, &day, region, "s3");
        let endpoint = Endpoint::parse(&base_url(addressing, region)).unwrap();
        fn request<'a>(
            key: &'a str,
            upload_id: &'a str,
            (n, len, checksum): &'a (u32, Option<u64>, Option<PartChecksum>),
        ) -> PartRequest<'a> {
            PartRequest { key, upload_id, part_number: *n, checksum: checksum.as_ref(), content_length: *len }
        }
        let batch = UploadParts::new(&endpoint, &signing_key, stamp, &request(&key, &upload_id, &parts[0]));
        for p in &parts {
            let part = request(&key, &upload_id, p);
            let ours = batch.sign(&part);
            let (alone, sdk, sigv4) = three_ways(&rt, addressing, &creds, region, &part, now, expiry);
            prop_assert_eq!(&ours.url, &alone);
            prop_assert_eq!(&ours.url, &sdk);
            prop_assert_eq!(&ours.url, &sigv4);
        }
        // The same parts written as a batch answer is, two at a time: each
        // URL as the part signed alone, in order, between its delimiters.
        let mut written = String::new();
        batch.write_urls(
            parts.iter().map(|p| request(&key, &upload_id, p)),
            &mut written,
            |out, part| out.push_str(&format!("<{}:", part.part_number)),
            ">",
        );
        let one_by_one: String = parts
            .iter()
            .map(|p| format!("<{}:{}>", p.0, batch.sign(&request(&key, &upload_id, p)).url))
            .collect();
        prop_assert_eq!(written, one_by_one);
    }
}

#[test]
fn the_longest_keys_sign_identically() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let creds = Credentials::new(
        "AKIDEXAMPLE",
        "secret/+key",
        Some("to/k+en=".into()),
        None,
        "t",
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_764_115_200);
    let keys = [
        "a".repeat(1024),
        "é".repeat(512),
        "a b+c%d~e//f".repeat(85) + "abcd",
        "😀".repeat(256),
    ];
    for key in &keys {
        assert_eq!(key.len(), 1024);
        for addressing in [
            Addressing::PathStyle,
            Addressing::VirtualHost,
            Addressing::Aws,
        ] {
            let part = PartRequest {
                key,
                upload_id: "id",
                part_number: 10_000,
                checksum: None,
                content_length: Some(5 << 30),
            };
            let (ours, sdk, sigv4) = three_ways(
                &rt,
                addressing,
                &creds,
                "us-east-1",
                &part,
                now,
                Duration::from_secs(3600),
            );
            assert_eq!(ours, sdk, "{addressing:?}");
            assert_eq!(ours, sigv4, "{addressing:?}");
        }
    }
}

/// A credentials provider that hands out a new set each time it is asked,
/// like a rotating role, and counts the asks.
#[derive(Debug, Clone)]
struct Rotating(std::sync::Arc<RotatingState>);

#[derive(Debug)]
struct RotatingState {
    asks: AtomicUsize,
    expiry: Mutex<Option<SystemTime>>,
}

impl std::ops::Deref for Rotating {
    type Target = RotatingState;
    fn deref(&self) -> &RotatingState {
        &self.0
    }
}

impl Rotating {
    fn generation(&self) -> usize {
        self.asks.load(Ordering::SeqCst)
    }
}

impl ProvideCredentials for Rotating {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.asks.fetch_add(1, Ordering::SeqCst) + 1;
        future::ProvideCredentials::ready(Ok(Credentials::new(
            format!("ASIAROTATING{n:08}"),
            format!("secret-{n}"),
            Some(format!("token-{n}")),
            *self.expiry.lock().unwrap(),
            "rotating",
        )))
    }
}

/// The cached key signs exactly as aws-sigv4 does with the credentials the
/// provider gives at that time.
fn assert_signs_as(key: &SigningKey, gen_: usize, now: SystemTime) {
    let creds = key.credentials();
    assert_eq!(creds.access_key_id(), format!("ASIAROTATING{gen_:08}"));
    let part = PartRequest {
        key: "k",
        upload_id: "u",
        part_number: 1,
        checksum: None,
        content_length: None,
    };
    let endpoint = Endpoint::parse(&base_url(Addressing::PathStyle, "us-east-1")).unwrap();
    let ours = presign_part(&endpoint, key, now, Duration::from_secs(60), &part).unwrap();
    let unsigned = "http://127.0.0.1:3900/bucket-1/k?x-id=UploadPart&partNumber=1&uploadId=u";
    let expected = sigv4_presigned(
        unsigned,
        &[],
        creds,
        "us-east-1",
        now,
        Duration::from_secs(60),
    );
    assert_eq!(ours.url, expected);
}

#[tokio::test]
async fn the_key_cache_follows_rotating_credentials_and_never_outlives_them() {
    let t0 = UNIX_EPOCH + Duration::from_secs(1_764_115_200); // 2025-11-26T00:00:00Z
    let provider = Rotating(std::sync::Arc::new(RotatingState {
        asks: AtomicUsize::new(0),
        expiry: Mutex::new(Some(t0 + Duration::from_secs(3600))),
    }));
    let cache = KeyCache::new(
        Some(SharedCredentialsProvider::new(provider.clone())),
        "us-east-1",
        "s3",
    );
    let min = |m: u64| t0 + Duration::from_secs(m * 60);

    let k1 = cache.key_at(t0).await.unwrap();
    assert_eq!(provider.generation(), 1);
    assert_signs_as(&k1, 1, t0);
    // Within the credentials' life: the same key, no new ask.
    let again = cache.key_at(min(10)).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&k1, &again));
    assert_eq!(provider.generation(), 1);
    // Nearing their expiry (an hour): new credentials, a new key.
    let k2 = cache.key_at(min(56)).await.unwrap();
    assert_eq!(provider.generation(), 2);
    assert_signs_as(&k2, 2, min(56));
    // Credentials without an expiry are asked for again every 15 minutes.
    *provider.expiry.lock().unwrap() = None;
    let k3 = cache.key_at(min(112)).await.unwrap();
    assert_eq!(provider.generation(), 3);
    assert_signs_as(&k3, 3, min(112));
    assert!(std::sync::Arc::ptr_eq(
        &k3,
        &cache.key_at(min(120)).await.unwrap()
    ));
    let k4 = cache.key_at(min(128)).await.unwrap();
    assert_eq!(provider.generation(), 4);
    assert_signs_as(&k4, 4, min(128));
    // A new UTC day: a key for that day, from the same credentials.
    let next_day = t0 + Duration::from_secs(24 * 3600 - 1);
    let k5 = cache.key_at(next_day).await.unwrap();
    assert_eq!(provider.generation(), 5);
    let k6 = cache
        .key_at(next_day + Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        provider.generation(),
        5,
        "a new day alone needs no new credentials"
    );
    assert!(!std::sync::Arc::ptr_eq(&k5, &k6));
    assert_signs_as(&k6, 5, next_day + Duration::from_secs(2));
    // Credentials that have already expired are never signed with.
    *provider.expiry.lock().unwrap() = Some(min(100));
    assert!(
        cache
            .key_at(next_day + Duration::from_secs(3600))
            .await
            .is_err()
    );
    // And no provider: a clear error, not a panic.
    let none = KeyCache::new(None, "us-east-1", "s3");
    assert!(none.key_at(t0).await.is_err());
}

// --- Over the wire: Garage ------------------------------------------------

/// A presigner on the local stack, path-style or virtual-host, optionally
/// with a session token added to the stack's credentials.
async fn stack_presigner(virtual_host: bool, token: Option<&str>) -> (Presigner, String) {
    let ctx = context(&[]).await;
    let sdk = aws_config::load_from_env().await;
    let sdk = match token {
        Some(t) => {
            let base = sdk
                .credentials_provider()
                .unwrap()
                .provide_credentials()
                .await
                .unwrap();
            sdk.to_builder()
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    base.access_key_id(),
                    base.secret_access_key(),
                    Some(t.to_string()),
                    None,
                    "test",
                )))
                .build()
        }
        None => sdk,
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").unwrap();
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(!virtual_host);
    if virtual_host {
        // Garage serves `<bucket>.s3.localhost` (its root domain).
        conf = conf.endpoint_url(endpoint.replace("127.0.0.1", "s3.localhost"));
    }
    let client = aws_sdk_s3::Client::from_conf(conf.build());
    (
        Presigner::new(client, &ctx.config.bucket, &sdk),
        ctx.config.bucket,
    )
}

/// PUTs `body` to `url` with `headers`, resolving every host to Garage's address.
async fn put_to(url: &str, headers: &[(String, String)], body: reqwest::Body) -> (u16, String) {
    try_put(url, headers, body).await.unwrap()
}

/// As [`put_to`], with the error when the server stops the request before
/// taking the whole body (Garage refuses a bad signature before reading it).
async fn try_put(
    url: &str,
    headers: &[(String, String)],
    body: reqwest::Body,
) -> Result<(u16, String), reqwest::Error> {
    let endpoint: reqwest::Url = std::env::var("AWS_ENDPOINT_URL_S3")
        .unwrap()
        .parse()
        .unwrap();
    let addr = std::net::SocketAddr::new(
        endpoint.host_str().unwrap().parse().unwrap(),
        endpoint.port().unwrap(),
    );
    let host = reqwest::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::builder()
        .resolve(&host, addr)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut req = client.put(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// PUTs `body` to a path-style `url` in one chunk of `Transfer-Encoding:
/// chunked`, with no Content-Length, over a plain socket.
async fn put_chunked(url: &str, body: Vec<u8>) -> (u16, String) {
    let url = reqwest::Url::parse(url).unwrap();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let mut s = std::net::TcpStream::connect(&authority).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let target = format!("{}?{}", url.path(), url.query().unwrap());
        let mut req = format!(
            "PUT {target} HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        req.extend_from_slice(b"\r\n0\r\n\r\n");
        s.write_all(&req).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, answer)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn garage_accepts_part_urls_for_awkward_keys_both_addressings_and_tokens() {
    let ctx = context(&[]).await;
    let body = bytes(1000, 7);
    let crc = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &body).to_be_bytes()[4..],
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let keys = [
        format!("presign/{id}/plain.bin"),
        format!("presign/{id}/a b+c%d~e//f=g&h?i#j.bin"),
        format!("presign/{id}/日本語 é 😀.bin"),
        format!("presign/{id}/{}", "é".repeat(490)),
    ];
    for virtual_host in [false, true] {
        for token in [None, Some("FQoGZXIvYXdzE/+= a session token")] {
            let (presigner, bucket) = stack_presigner(virtual_host, token).await;
            for (i, key) in keys.iter().enumerate() {
                assert!(key.len() <= 1024);
                let with_crc = i % 2 == 1;
                let upload = ctx
                    .storage
                    .create_upload(
                        key,
                        "application/octet-stream",
                        with_crc.then_some(ChecksumAlgorithm::Crc32c),
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                let checksum = PartChecksum {
                    algorithm: ChecksumAlgorithm::Crc32c,
                    value: crc.clone(),
                };
                let part = PartRequest {
                    key,
                    upload_id: &upload,
                    part_number: 1,
                    checksum: with_crc.then_some(&checksum),
                    content_length: Some(body.len() as u64),
                };
                let signed = presigner
                    .upload_part(&part, Duration::from_secs(600))
                    .await
                    .unwrap();
                if virtual_host {
                    assert!(
                        signed
                            .url
                            .starts_with(&format!("http://{bucket}.s3.localhost:")),
                        "{}",
                        signed.url
                    );
                }
                assert_eq!(
                    signed.url.contains("X-Amz-Security-Token="),
                    token.is_some()
                );
                let headers: Vec<_> = signed.headers.clone().into_iter().collect();
                let (status, text) = put_to(&signed.url, &headers, body.clone().into()).await;
                assert_eq!(
                    status, 200,
                    "{key:?} virtual_host={virtual_host} token={token:?}: {text}"
                );
                ctx.storage
                    .abort_and_confirm(key, &upload, 3)
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_part_of_the_wrong_size_is_refused_and_the_right_size_accepted() {
    let ctx = context(&[]).await;
    let owner = owner("presign");
    let mib = 1u64 << 20;
    let up = create(
        &ctx,
        &owner,
        json!({"filename": "sized.bin", "size": 5 * mib + 10, "partSize": 5 * mib}),
    )
    .await;
    assert_eq!(up.body["partCount"], 2);
    let url1 = sign(&ctx, &owner, &up, 1).await;
    let url2 = sign(&ctx, &owner, &up, 2).await;
    assert!(
        url2.contains("X-Amz-SignedHeaders=content-length%3Bhost&"),
        "{url2}"
    );
    // The batch route signs the same sizes in.
    let (status, batch) = Call::new(BATCH)
        .owner(&owner)
        .path("uploadId", &up.upload_id)
        .query("partNumbers", "1-2")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{batch}");
    let batch2 = batch["presignedUrls"]["2"].as_str().unwrap().to_string();

    for url in [&url2, &batch2] {
        for wrong in [9usize, 11, 5 << 20] {
            match try_put(url, &[], bytes(wrong, 1).into()).await {
                Ok((status, text)) => {
                    assert_eq!(status, 403, "{wrong} bytes for a 10-byte part: {text}");
                    assert!(
                        text.contains("SignatureDoesNotMatch") || text.contains("AccessDenied"),
                        "{text}"
                    );
                    println!("{wrong} bytes for a 10-byte part: {text}");
                }
                // Refused before the body was read: the connection closes under it.
                Err(e) => assert!(e.is_request(), "{wrong} bytes: {e:?}"),
            }
        }
        // Without a Content-Length at all (chunked): refused too. Garage
        // answers 400 here (the signed header is missing from the request).
        let (status, text) = put_chunked(url, bytes(10, 1)).await;
        assert!(matches!(status, 400 | 403), "a chunked part: {text}");
        println!("chunked PUT: {text}");
    }
    // S3 holds nothing of the refused PUTs.
    let held = ctx
        .storage
        .list_parts(&up.key, &up.upload_id)
        .await
        .unwrap();
    assert_eq!(held, Some(vec![]));
    let (status, _) = put_to(&batch2, &[], bytes(10, 2).into()).await;
    assert_eq!(status, 200);
    let (status, text) = put_to(&url1, &[], bytes(5 << 20, 3).into()).await;
    assert_eq!(status, 200, "{text}");
    // Nothing oversized got in: complete makes the declared file.
    let (status, done) = Call::new(COMPLETE)
        .owner(&owner)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{done}");
    let object = s3_object(&ctx, &up.key).await.unwrap();
    assert_eq!(object.len() as u64, 5 * mib + 10);
    assert_eq!(&object[(5 << 20)..], &bytes(10, 2)[..]);
}
