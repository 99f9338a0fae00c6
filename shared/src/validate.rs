//! Checks on what clients send, each failing as a clear 4xx.

use crate::config::{Config, limits};
use crate::error::{Error, Result};

/// The content type to store: given (validated, allow-listed) or `application/octet-stream`.
pub fn content_type(config: &Config, given: Option<&str>) -> Result<String> {
    let ct = given
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("application/octet-stream");
    let essence = ct.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let valid = ct.len() <= 255
        && !ct.chars().any(char::is_control)
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s));
    if !valid {
        return Err(Error::bad_request(format!(
            "{ct:?} is not a valid content type"
        )));
    }
    if !config.content_type_allowed(ct) {
        return Err(Error::Unprocessable(format!(
            "content type {essence:?} is not allowed here"
        )));
    }
    Ok(ct.to_string())
}

/// A declared size, within the configured maximum.
pub fn size(config: &Config, size: Option<u64>) -> Result<Option<u64>> {
    match size {
        Some(s) if s > config.max_upload_size => Err(Error::TooLarge(format!(
            "{s} bytes is more than the {} bytes this service accepts",
            config.max_upload_size
        ))),
        other => Ok(other),
    }
}

/// A part number in canonical decimal (`1` to `10000`: digits only, no sign,
/// no leading zero, no spaces), and within the plan's part count when known.
/// `+1` and `01` are refused: one number has one spelling.
pub fn part_number(raw: &str, part_count: Option<u32>) -> Result<u32> {
    let canonical = !raw.is_empty()
        && raw.len() <= 5
        && raw.bytes().all(|b| b.is_ascii_digit())
        && !raw.starts_with('0');
    let n: u32 = raw.parse().ok().filter(|_| canonical).ok_or_else(|| {
        Error::bad_request(format!(
            "part number {raw:?} is not a whole number from 1 to {}",
            limits::MAX_PARTS
        ))
    })?;
    let max = part_count
        .unwrap_or(limits::MAX_PARTS)
        .min(limits::MAX_PARTS);
    if n > max {
        return Err(Error::bad_request(format!(
            "part number {n} is outside 1..={max}"
        )));
    }
    Ok(n)
}

/// A list like `1,2,5-9` of part numbers (each in [`part_number`]'s canonical
/// form, no empty items, no spaces): sorted, without repeats, at most `cap`.
pub fn part_numbers(raw: &str, part_count: Option<u32>, cap: usize) -> Result<Vec<u32>> {
    if raw.is_empty() {
        return Err(Error::bad_request("partNumbers is empty"));
    }
    let mut out = Vec::new();
    for item in raw.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (part_number(a, part_count)?, part_number(b, part_count)?),
            None => {
                let n = part_number(item, part_count)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(Error::bad_request(format!("range {item:?} runs backwards")));
        }
        if out.len() + (hi - lo + 1) as usize > cap {
            return Err(Error::bad_request(format!(
                "at most {cap} parts can be signed in one call"
            )));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A client's preferred part size, when given: within S3's 5 MiB – 5 GiB.
pub fn part_size(preferred: Option<u64>) -> Result<Option<u64>> {
    match preferred {
        Some(p) if !(limits::MIN_PART_SIZE..=limits::MAX_PART_SIZE).contains(&p) => {
            Err(Error::bad_request(format!(
                "partSize {p} is outside S3's {} to {} bytes",
                limits::MIN_PART_SIZE,
                limits::MAX_PART_SIZE
            )))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(types: &str) -> Config {
        Config::from_lookup(|k| match k {
            "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("x".into()),
            "PARTWISE_ALLOWED_CONTENT_TYPES" => Some(types.into()),
            "PARTWISE_MAX_UPLOAD_SIZE" => Some("1GiB".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn content_types_are_checked_and_defaulted() {
        let c = config("video/*");
        assert_eq!(content_type(&c, Some("video/mp4")).unwrap(), "video/mp4");
        assert_eq!(
            content_type(&c, Some("image/png")).unwrap_err().status(),
            422
        );
        assert_eq!(
            content_type(&c, Some("video/mp4\r\nX-Evil: 1"))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            content_type(&c, Some("nonsense")).unwrap_err().status(),
            400
        );
        let all = config("*/*");
        assert_eq!(
            content_type(&all, Some("")).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(&all, None).unwrap(),
            "application/octet-stream"
        );
    }

    #[test]
    fn sizes_over_the_maximum_are_413() {
        let c = config("*/*");
        assert_eq!(size(&c, Some(1 << 30)).unwrap(), Some(1 << 30));
        assert_eq!(size(&c, Some((1 << 30) + 1)).unwrap_err().status(), 413);
    }

    #[test]
    fn part_numbers_parse_lists_and_ranges() {
        assert_eq!(
            part_numbers("3,1,5-7,1", None, 100).unwrap(),
            vec![1, 3, 5, 6, 7]
        );
        assert!(part_numbers("0", None, 10).is_err());
        assert!(part_numbers("10001", None, 10).is_err());
        assert!(part_numbers("4", Some(3), 10).is_err());
        assert!(part_numbers("9-2", None, 10).is_err());
        assert!(part_numbers("1-11", None, 10).is_err());
        assert!(part_numbers("a", None, 10).is_err());
        assert!(part_numbers("", None, 10).is_err());
        assert_eq!(part_number("10000", None).unwrap(), 10000);
    }

    #[test]
    fn only_canonical_part_numbers_are_accepted() {
        for bad in [
            "+1",
            "01",
            "001",
            " 1",
            "1 ",
            "-1",
            "1.0",
            "1e0",
            "0x1",
            "１",
            "",
            "00",
            "10000 ",
            "99999999999",
        ] {
            assert_eq!(part_number(bad, None).unwrap_err().status(), 400, "{bad:?}");
        }
        for bad in [
            "+1", "01", "1,,2", "1,", ",1", "1, 2", "01-3", "1-+3", "1-2-3", "-", "1-",
        ] {
            assert_eq!(
                part_numbers(bad, None, 100).unwrap_err().status(),
                400,
                "{bad:?}"
            );
        }
        assert_eq!(
            part_numbers("1,10-12", None, 100).unwrap(),
            vec![1, 10, 11, 12]
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// What the canonical form of `n` is: its plain decimal spelling.
        fn canonical(raw: &str) -> Option<u32> {
            let n: u32 = raw.parse().ok()?;
            (n.to_string() == raw && (1..=limits::MAX_PARTS).contains(&n)).then_some(n)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn part_number_accepts_exactly_the_canonical_forms(
                raw in prop_oneof![
                    "[+-]?0{0,3}[0-9]{0,6}",
                    "[ 0-9+-]{0,8}",
                    any::<String>(),
                    (0u32..20_000).prop_map(|n| n.to_string()),
                ]
            ) {
                let got = part_number(&raw, None).ok();
                prop_assert_eq!(got, canonical(&raw), "{:?}", raw);
            }

            #[test]
            fn part_number_lists_never_panic_and_hold_only_canonical_items(
                raw in prop_oneof!["[0-9,+ -]{0,30}", any::<String>()],
                count in prop::option::of(1u32..=10_000),
                cap in 1usize..2000,
            ) {
                if let Ok(numbers) = part_numbers(&raw, count, cap) {
                    prop_assert!(!numbers.is_empty() && numbers.len() <= cap);
                    prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
                    let max = count.unwrap_or(limits::MAX_PARTS);
                    prop_assert!(numbers.iter().all(|n| (1..=max).contains(n)));
                    for item in raw.split(',') {
                        for end in item.splitn(2, '-') {
                            prop_assert!(canonical(end).is_some(), "{:?} in {:?}", end, raw);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_preferred_part_size_stays_within_s3s_limits() {
        assert_eq!(part_size(None).unwrap(), None);
        assert_eq!(
            part_size(Some(limits::MIN_PART_SIZE)).unwrap(),
            Some(limits::MIN_PART_SIZE)
        );
        for bad in [0, limits::MIN_PART_SIZE - 1, limits::MAX_PART_SIZE + 1] {
            assert_eq!(part_size(Some(bad)).unwrap_err().status(), 400, "{bad}");
        }
    }
}
