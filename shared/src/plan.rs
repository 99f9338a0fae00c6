//! Part plans: how to cut a file of known size into S3 parts.

use crate::config::{MIB, limits};
use crate::error::{Error, Result};
use serde::Serialize;

/// Part size and count for a file; every part but the last is `part_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartPlan {
    pub part_size: u64,
    pub part_count: u32,
}

impl PartPlan {
    /// The plan for `size` bytes: the preferred part size, grown (in whole MiB)
    /// only as far as needed to stay within 10,000 parts.
    pub fn for_size(size: u64, preferred: u64) -> Result<PartPlan> {
        if size > limits::MAX_OBJECT_SIZE {
            return Err(Error::TooLarge(format!(
                "{size} bytes is more than S3's 5 TiB object limit"
            )));
        }
        let needed = size.div_ceil(limits::MAX_PARTS as u64).div_ceil(MIB) * MIB;
        let part_size = preferred
            .clamp(limits::MIN_PART_SIZE, limits::MAX_PART_SIZE)
            .max(needed);
        let part_count = size.div_ceil(part_size).max(1) as u32;
        Ok(PartPlan {
            part_size,
            part_count,
        })
    }

    /// Expected size of part `n` (1-based) of a `size`-byte file.
    pub fn part_len(&self, size: u64, n: u32) -> u64 {
        if n < self.part_count {
            self.part_size
        } else {
            size - self.part_size * (self.part_count as u64 - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GIB, TIB};

    #[test]
    fn small_files_use_the_preferred_size() {
        let p = PartPlan::for_size(100 * MIB, 16 * MIB).unwrap();
        assert_eq!(
            p,
            PartPlan {
                part_size: 16 * MIB,
                part_count: 7
            }
        );
        assert_eq!(p.part_len(100 * MIB, 7), 4 * MIB);
        assert_eq!(PartPlan::for_size(0, 16 * MIB).unwrap().part_count, 1);
    }

    #[test]
    fn huge_files_stay_within_limits() {
        for size in [
            5 * TIB,
            5 * TIB - 1,
            TIB + 7,
            160 * GIB,
            10_000 * 16 * MIB + 1,
        ] {
            let p = PartPlan::for_size(size, 16 * MIB).unwrap();
            assert!(p.part_count <= limits::MAX_PARTS, "{size}: {p:?}");
            assert!(p.part_size >= limits::MIN_PART_SIZE && p.part_size <= limits::MAX_PART_SIZE);
            assert!(p.part_size * p.part_count as u64 >= size);
            assert!(p.part_size * (p.part_count as u64 - 1) < size);
        }
        assert!(PartPlan::for_size(5 * TIB + 1, 16 * MIB).is_err());
    }
}
