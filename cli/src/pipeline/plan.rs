//! Stage "plan": how the file is cut, and what each part needs: checking
//! against the copy S3 holds (a resume), or sending.

use crate::api::HeldPart;
use crate::args::{MAX_PART_SIZE, MIB, MIN_PART_SIZE};
use crate::source::Source;
use std::collections::HashMap;

/// How a file is cut: every part `part_size` bytes but the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub part_size: u64,
    pub part_count: u32,
}

impl Plan {
    pub fn offset(&self, n: u32) -> u64 {
        (n as u64 - 1) * self.part_size
    }

    pub fn len(&self, size: u64, n: u32) -> u64 {
        if n < self.part_count {
            self.part_size
        } else {
            size - self.offset(n)
        }
    }

    /// Whether this plan really cuts a `size`-byte file (a server's answer is checked, not trusted).
    pub fn fits(&self, size: u64) -> bool {
        self.part_size > 0
            && self.part_count >= 1
            && (self.part_count as u64 - 1) * self.part_size < size.max(1)
            && self.part_size * self.part_count as u64 >= size
    }
}

/// The plan the server makes for `size` bytes with a preferred part size
/// (its `PartPlan::for_size`): for `--dry-run`, which asks the server nothing.
pub fn server_plan(size: u64, preferred: u64) -> Plan {
    let needed = size.div_ceil(10_000).div_ceil(MIB) * MIB;
    let part_size = preferred.clamp(MIN_PART_SIZE, MAX_PART_SIZE).max(needed);
    Plan {
        part_size,
        part_count: size.div_ceil(part_size).max(1) as u32,
    }
}

/// One part's job.
#[derive(Debug, Clone)]
pub struct PartJob {
    pub number: u32,
    pub offset: u64,
    pub len: u64,
    /// S3's copy, from an earlier run: kept if it matches the file.
    pub held: Option<HeldPart>,
}

/// Every part of the file, in order, with what S3 holds of each (`held`).
pub fn parts(plan: &Plan, held: &HashMap<u32, HeldPart>, src: &Source) -> Vec<PartJob> {
    (1..=plan.part_count)
        .map(|n| PartJob {
            number: n,
            offset: plan.offset(n),
            len: plan.len(src.size, n),
            held: held.get(&n).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cut_files() {
        let p = Plan {
            part_size: 10,
            part_count: 3,
        };
        assert!(p.fits(25));
        assert_eq!(p.len(25, 3), 5);
        assert_eq!(p.offset(3), 20);
        assert!(!p.fits(31));
        assert!(!p.fits(20));
    }

    #[test]
    fn the_server_plan_grows_parts_for_huge_files() {
        let p = server_plan(5 * 1024 * 1024 * MIB, 16 * MIB);
        assert!(p.part_count <= 10_000);
        assert_eq!(p.part_size, 525 * MIB);
        assert_eq!(server_plan(100 * MIB, 16 * MIB).part_count, 7);
        assert_eq!(server_plan(0, 16 * MIB).part_count, 1);
    }
}
