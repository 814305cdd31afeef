//! Just enough of PEP 440 for markers and pins: release segments compared
//! numerically (`3.10` > `3.9`), with `*` prefix matches for `==`.

use std::cmp::Ordering;

/// The numeric release segments of a version, e.g. `3.11.2` → `[3, 11, 2]`.
/// Anything after the release (`rc1`, `.post1`, `+local`) is ignored.
pub fn release(v: &str) -> Vec<u64> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let v = v.split_once('!').map(|(_, r)| r).unwrap_or(v);
    v.split('.')
        .map_while(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() { None } else { digits.parse().ok() }
        })
        .collect()
}

/// Compares two versions by release segments, missing ones counting as 0.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (release(a), release(b));
    for i in 0..a.len().max(b.len()) {
        match a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// Evaluates `version OP spec` for the PEP 440 comparison operators.
pub fn satisfies(version: &str, op: &str, spec: &str) -> bool {
    if let Some(prefix) = spec.strip_suffix(".*") {
        let (v, p) = (release(version), release(prefix));
        let matches = v.len() >= p.len() && v[..p.len()] == p[..];
        return match op {
            "==" => matches,
            "!=" => !matches,
            _ => false,
        };
    }
    let ord = compare(version, spec);
    match op {
        "==" | "===" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        "~=" => {
            let s = release(spec);
            if s.len() < 2 {
                return false;
            }
            let v = release(version);
            ord != Ordering::Less && v.len() >= s.len() - 1 && v[..s.len() - 1] == s[..s.len() - 1]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_not_lexical() {
        assert_eq!(compare("3.10", "3.9"), Ordering::Greater);
        assert_eq!(compare("3.11", "3.11.0"), Ordering::Equal);
        assert!(satisfies("3.11.2", "==", "3.11.*"));
        assert!(!satisfies("3.12.0", "==", "3.11.*"));
        assert!(satisfies("3.11", "~=", "3.8"));
        assert!(!satisfies("4.0", "~=", "3.8"));
        assert!(satisfies("3.11", "<", "3.12"));
    }
}
