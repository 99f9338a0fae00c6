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
