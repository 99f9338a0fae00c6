//! The figures: min, median and max per binary, ratios to the baseline's
//! median, and the cost of the grant keys' read, as Markdown tables ready for docs/performance.md.

use std::fmt::Write;
use std::time::Duration;

/// One start.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub init: Duration,
    pub first_invoke: Duration,
    pub warm_invoke: Duration,
}

/// Every start of one configuration.
pub struct Row {
    pub label: String,
    pub binary: String,
    pub baseline: bool,
    /// Its first call issues a grant, with the keys from here.
    pub grant: Option<GrantKeys>,
    pub size: u64,
    pub samples: Vec<Sample>,
}

/// Where a start's grant keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKeys {
    /// The secret, read at the first call that needs them.
    FromSecret,
    /// The environment: nothing to read.
    Given,
}

/// Min, median and max (the median of an even count is the mean of the middle two).
pub fn spread(mut xs: Vec<Duration>) -> (Duration, Duration, Duration) {
    if xs.is_empty() {
        return Default::default();
    }
    xs.sort();
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    };
    (xs[0], median, xs[n - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

impl Row {
    fn init(&self) -> (Duration, Duration, Duration) {
        spread(self.samples.iter().map(|s| s.init).collect())
    }
    fn first(&self) -> (Duration, Duration, Duration) {
        spread(self.samples.iter().map(|s| s.first_invoke).collect())
    }
    fn warm(&self) -> (Duration, Duration, Duration) {
        spread(self.samples.iter().map(|s| s.warm_invoke).collect())
    }
}

/// The report: the table, then the key read's cost.
pub fn render(rows: &[Row], runs: usize, latency_ms: u64, keys_read: u64, rejected: u64) -> String {
    let base = rows
        .iter()
        .find(|r| r.baseline)
        .map_or(Duration::ZERO, |r| r.init().1);
    let ratio = |d: Duration| {
        if base.is_zero() {
            "-".to_string()
        } else {
            format!("{:.2}×", d.as_secs_f64() / base.as_secs_f64())
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{runs} starts of each, interleaved; times in ms; ratio = median init / hello-lambda's median init\n"
    );
    let _ = writeln!(
        out,
        "| binary | size (bytes) | init min | init median | init max | ratio | first invoke median (min-max) | warm invoke median |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (lo, med, hi) = r.init();
        let (flo, fmed, fhi) = r.first();
        let (_, wmed, _) = r.warm();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} ({}-{}) | {} |",
            r.label,
            r.size,
            ms(lo),
            ms(med),
            ms(hi),
            ratio(med),
            ms(fmed),
            ms(flo),
            ms(fhi),
            ms(wmed)
        );
    }
    let _ = writeln!(
        out,
        "\nGrant keys read at the first call that needs them (GetSecretValue, stand-in latency {latency_ms} ms; \
         {keys_read} reads served, {rejected} refused):\n"
    );
    let _ = writeln!(
        out,
        "| function | first invoke median, keys from the secret | keys in the environment | the read adds |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for with in rows
        .iter()
        .filter(|r| r.grant == Some(GrantKeys::FromSecret))
    {
        let Some(given) = rows
            .iter()
            .find(|r| r.binary == with.binary && r.grant == Some(GrantKeys::Given))
        else {
            continue;
        };
        let (a, b) = (with.first().1, given.first().1);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            with.binary,
            ms(a),
            ms(b),
            if a >= b {
                format!("+{}", ms(a - b))
            } else {
                format!("-{}", ms(b - a))
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let d = Duration::from_millis;
        assert_eq!(spread(vec![d(5), d(1), d(3)]), (d(1), d(3), d(5)));
        assert_eq!(spread(vec![d(4), d(1), d(2), d(10)]), (d(1), d(3), d(10)));
        assert_eq!(spread(vec![]), Default::default());
    }
}
