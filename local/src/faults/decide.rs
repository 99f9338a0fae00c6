//! The seeded choice: request number `index` of a run with `seed` always gets
//! the same fault, whatever the timing, so a failing run can be replayed.

use super::rules::{Fault, Rule, Service};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The fault for request `index` (0, 1, 2... in arrival order), or `None` to
/// forward it untouched. One uniform draw is laid over the matching rules'
/// probabilities end to end, so rules never overlap and their rates add up.
pub fn decide(
    seed: u64,
    index: u64,
    rules: &[Rule],
    service: Service,
    operation: &str,
) -> Option<Fault> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    let draw: f64 = StdRng::from_seed(key).random();
    let mut bound = 0.0;
    for rule in rules.iter().filter(|r| r.matches(service, operation)) {
        bound += rule.probability;
        if draw < bound {
            return Some(rule.fault);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_the_rates_hold() {
        let rules = [
            Rule::new(Fault::S3SlowDown, 0.2),
            Rule::new(Fault::ResetAfter, 0.1),
        ];
        let run = |seed| -> Vec<Option<Fault>> {
            (0..10_000)
                .map(|i| decide(seed, i, &rules, Service::S3, "ListParts"))
                .collect()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let count = |f| a.iter().filter(|d| **d == Some(f)).count();
        // 10,000 draws: the counts sit within 5 standard deviations of the rates.
        assert!(
            (1800..2200).contains(&count(Fault::S3SlowDown)),
            "{}",
            count(Fault::S3SlowDown)
        );
        assert!(
            (850..1150).contains(&count(Fault::ResetAfter)),
            "{}",
            count(Fault::ResetAfter)
        );
        // DynamoDB never gets S3's error body, and gets the connection fault at its own rate.
        assert!((0..10_000).all(|i| {
            decide(7, i, &rules, Service::DynamoDb, "GetItem") != Some(Fault::S3SlowDown)
        }));
    }
}
