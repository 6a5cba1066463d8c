//! Key range helpers following etcd's conventions.
//!
//! A range is `[key, range_end)`. An empty `range_end` means the single key `key`; a `range_end` of
//! `[0]` means every key greater than or equal to `key`; an empty `key` with `range_end == [0]` means
//! every key.

/// The smallest key greater than every key starting with `prefix`: the `range_end` of a prefix
/// range. For an empty prefix, or a prefix of only `0xff` bytes, it is `[0]` (everything from `key`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// True when `candidate` lies in the range `[key, range_end)` under etcd's conventions.
pub fn in_range(key: &[u8], range_end: &[u8], candidate: &[u8]) -> bool {
    if range_end.is_empty() {
        return candidate == key;
    }
    if range_end == [0] {
        return candidate >= key;
    }
    candidate >= key && candidate < range_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_prefix_end(prefix: &[u8], expected: &[u8]) {
        assert_eq!(prefix_end(prefix), expected, "prefix {prefix:?}");
    }

    #[test]
    fn prefix_end_cases() {
        check_prefix_end(b"a", b"b");
        check_prefix_end(b"/kuboard/", b"/kuboard0");
        check_prefix_end(&[b'a', 0xff], b"b");
        check_prefix_end(&[0xff, 0xff], &[0]);
        check_prefix_end(b"", &[0]);
    }

    #[test]
    fn in_range_cases() {
        assert!(in_range(b"a", b"", b"a"));
        assert!(!in_range(b"a", b"", b"ab"));
        assert!(in_range(b"a", b"b", b"ab"));
        assert!(!in_range(b"a", b"b", b"b"));
        assert!(in_range(b"a", &[0], b"zzz"));
        assert!(in_range(b"", &[0], b""));
        assert!(!in_range(b"b", &[0], b"a"));
    }
}
