//! Fault rules: which fault, on which service and operation, with which probability.

use std::time::Duration;

/// The service behind a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    S3,
    DynamoDb,
}

/// One thing the proxy can do to a request instead of (or besides) forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// S3: `503 SlowDown`.
    S3SlowDown,
    /// S3: `500 InternalError`.
    S3InternalError,
    /// DynamoDB: `400 ProvisionedThroughputExceededException`.
    DynamoThroughputExceeded,
    /// DynamoDB: `400 ThrottlingException`.
    DynamoThrottling,
    /// DynamoDB: `500 InternalServerError`.
    DynamoInternalError,
    /// The connection is reset before the request is forwarded: it never took effect.
    ResetBefore,
    /// The request is forwarded and takes effect, then the connection is reset
    /// before the answer: the caller cannot know it succeeded.
    ResetAfter,
    /// The request is forwarded after this delay.
    Latency(Duration),
    /// The request is held this long (past the client's timeout), then the
    /// connection is reset without forwarding.
    Stall(Duration),
}

impl Fault {
    /// The service whose error body this is; `None` for faults of the connection.
    pub fn service(&self) -> Option<Service> {
        match self {
            Fault::S3SlowDown | Fault::S3InternalError => Some(Service::S3),
            Fault::DynamoThroughputExceeded
            | Fault::DynamoThrottling
            | Fault::DynamoInternalError => Some(Service::DynamoDb),
            Fault::ResetBefore | Fault::ResetAfter | Fault::Latency(_) | Fault::Stall(_) => None,
        }
    }

    /// A stable name for counts and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::S3SlowDown => "s3 503 SlowDown",
            Fault::S3InternalError => "s3 500 InternalError",
            Fault::DynamoThroughputExceeded => "dynamodb ProvisionedThroughputExceeded",
            Fault::DynamoThrottling => "dynamodb ThrottlingException",
            Fault::DynamoInternalError => "dynamodb 500 InternalServerError",
            Fault::ResetBefore => "reset before forwarding",
            Fault::ResetAfter => "reset after forwarding",
            Fault::Latency(_) => "latency",
            Fault::Stall(_) => "stall past timeout",
        }
    }
}

/// Injects `fault` into a share `probability` of the matching requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Only this service; `None`: any.
    pub service: Option<Service>,
    /// Only this operation (`UpdateItem`, `CompleteMultipartUpload`...); `None`: any.
    pub operation: Option<String>,
    /// Share of the matching requests, 0 to 1.
    pub probability: f64,
    pub fault: Fault,
}

impl Rule {
    /// `fault` on a share `probability` of every request it applies to.
    pub fn new(fault: Fault, probability: f64) -> Rule {
        Rule {
            service: fault.service(),
            operation: None,
            probability,
            fault,
        }
    }

    /// Narrowed to one operation.
    pub fn on(mut self, operation: &str) -> Rule {
        self.operation = Some(operation.to_string());
        self
    }

    /// Whether this rule applies to a request of `operation` to `service`.
    /// A service's error body is never sent for another service.
    pub fn matches(&self, service: Service, operation: &str) -> bool {
        self.service.is_none_or(|s| s == service)
            && self.fault.service().is_none_or(|s| s == service)
            && self.operation.as_deref().is_none_or(|o| o == operation)
    }
}

/// `rate` split evenly over `faults`, each kept to the services it fits: a
/// proxy in front of S3 draws from the S3 and connection faults only.
pub fn spread(faults: &[Fault], rate: f64, service: Service) -> Vec<Rule> {
    let fitting: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| f.service().is_none_or(|s| s == service))
        .collect();
    let share = rate / fitting.len().max(1) as f64;
    fitting.into_iter().map(|f| Rule::new(f, share)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_stay_with_their_service() {
        let r = Rule::new(Fault::S3SlowDown, 1.0);
        assert!(r.matches(Service::S3, "ListParts"));
        assert!(!r.matches(Service::DynamoDb, "GetItem"));
        let r = Rule::new(Fault::ResetAfter, 1.0).on("UpdateItem");
        assert!(r.matches(Service::DynamoDb, "UpdateItem"));
        assert!(!r.matches(Service::DynamoDb, "GetItem"));
        let rules = spread(
            &[
                Fault::S3SlowDown,
                Fault::DynamoThrottling,
                Fault::ResetBefore,
            ],
            0.3,
            Service::DynamoDb,
        );
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| (r.probability - 0.15).abs() < 1e-9));
    }
}
