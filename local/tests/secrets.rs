//! The Secrets Manager stand-in, called by the functions' own code
//! (`partwise::grants::read_secret` over `partwise::sdk`'s HTTP client):
//! a signed request gets the keys; a wrongly signed one or an unknown secret
//! gets the service's errors, and nothing else is served.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use partwise_local::secrets::SecretsManager;
use partwise_local::stack::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use std::collections::HashMap;
use std::time::Duration;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:keys-AbCdEf";

async fn sdk(url: &str, secret_key: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            secret_key,
            None,
            None,
            "test",
        ))
        .endpoint_url(url)
        .http_client(partwise::sdk::https_client())
        .load()
        .await
}

async fn stand_in() -> SecretsManager {
    let keys = format!("{},{}", "c".repeat(32), "p".repeat(32));
    SecretsManager::for_stack(HashMap::from([(ARN.to_string(), keys)]), Duration::ZERO)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_request_reads_the_grant_keys() {
    let sm = stand_in().await;
    let keys = partwise::grants::read_secret(&sdk(&sm.url(), SECRET_ACCESS_KEY).await, ARN)
        .await
        .unwrap();
    assert_eq!(format!("{keys:?}"), "GrantKeys(2 keys, redacted)");
    assert_eq!((sm.served(), sm.rejected()), (1, 0));
}

#[tokio::test]
async fn a_wrong_signature_or_an_unknown_secret_is_refused() {
    let sm = stand_in().await;
    let forged = sdk(&sm.url(), "not-the-secret").await;
    let err = partwise::grants::read_secret(&forged, ARN)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("cccc"), "{err}");
    assert_eq!((sm.served(), sm.rejected()), (0, 1));

    let good = sdk(&sm.url(), SECRET_ACCESS_KEY).await;
    assert!(
        partwise::grants::read_secret(&good, &format!("{ARN}x"))
            .await
            .is_err()
    );
    assert_eq!((sm.served(), sm.rejected()), (0, 1));
}

/// A `POST /grants` event from the caller `sub`, as API Gateway sends it.
fn issue_grant(sub: &str) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    serde_json::from_value(serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /grants",
        "rawPath": "/grants",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "t", "domainName": "api.example", "requestId": "r",
            "routeKey": "POST /grants", "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/grants", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": null}}
        },
        "body": "{}",
        "isBase64Encoded": false
    }))
    .unwrap()
}

/// The functions' context with the grant keys in the stand-in's secret, as deployed.
fn deployed_context(sdk: &SdkConfig) -> partwise::Context {
    let config = partwise::Config::from_lookup(|k| match k {
        "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("unused".into()),
        "PARTWISE_GRANT_SECRET_ARN" => Some(ARN.into()),
        _ => None,
    })
    .unwrap();
    partwise::Context::new(config, sdk)
}

#[tokio::test]
async fn the_secret_is_read_at_the_first_grant_call_and_kept() {
    let sm = stand_in().await;
    let ctx = deployed_context(&sdk(&sm.url(), SECRET_ACCESS_KEY).await);
    // Building the context, as a cold start does, reads nothing.
    assert_eq!((sm.served(), sm.rejected()), (0, 0));
    for round in 1..=3 {
        let resp =
            partwise::api::handle(&ctx, partwise::api::Function::Initiate, issue_grant("ann"))
                .await;
        assert_eq!(resp.status_code, 200, "round {round}: {:?}", resp.body);
        // One read for the instance, however many grants follow.
        assert_eq!((sm.served(), sm.rejected()), (1, 0), "round {round}");
    }
}

#[tokio::test]
async fn a_failed_read_is_not_kept_and_leaks_no_key() {
    let sm = stand_in().await;
    let ctx = deployed_context(&sdk(&sm.url(), "not-the-secret").await);
    for round in 1..=2u64 {
        let resp =
            partwise::api::handle(&ctx, partwise::api::Function::Initiate, issue_grant("ann"))
                .await;
        assert_eq!(resp.status_code, 500, "round {round}: {:?}", resp.body);
        let body = format!("{:?}", resp.body);
        assert!(
            !body.contains("cccc") && body.contains("internal error"),
            "{body}"
        );
        // Each call tries again: a failure is not remembered as "no keys".
        assert_eq!((sm.served(), sm.rejected()), (0, round));
    }
}
