//! Percent-encoding as S3's SigV4 expects it: RFC 3986 unreserved characters kept, all else `%XX`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but `A-Z a-z 0-9 - . _ ~` (query names and values).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, keeping `/` (an object key in a path: the SDK's "greedy" label).
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// Appends `s` encoded as a query value.
pub fn query_value(out: &mut String, s: &str) {
    out.extend(utf8_percent_encode(s, QUERY));
}

/// Appends `s` encoded as path segments (an object key).
pub fn path(out: &mut String, s: &str) {
    out.extend(utf8_percent_encode(s, PATH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_unreserved_characters() {
        let mut q = String::new();
        query_value(&mut q, "a b+c%d~e/f=é");
        assert_eq!(q, "a%20b%2Bc%25d~e%2Ff%3D%C3%A9");
        let mut p = String::new();
        path(&mut p, "dir//a b+c~.txt");
        assert_eq!(p, "dir//a%20b%2Bc~.txt");
    }
}
