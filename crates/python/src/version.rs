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

/// True when two versions are the same release: equal release segments (zero
/// padded) and the same pre/post/dev suffix, so `1.0` never matches `1.0rc1`
/// or `1.0.post1`. A `+local` part counts only when both have one.
pub fn same(a: &str, b: &str) -> bool {
    let suffix = |v: &str| -> (String, Option<String>) {
        let v = v.trim().to_ascii_lowercase();
        let v = v.trim_start_matches('v').to_string();
        let (public, local) = match v.split_once('+') {
            Some((p, l)) => (p.to_string(), Some(l.to_string())),
            None => (v, None),
        };
        let rest: String = public
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '!')
            .chars()
            .filter(|c| !matches!(c, '.' | '-' | '_'))
            .collect();
        (rest, local)
    };
    let ((ra, la), (rb, lb)) = (suffix(a), suffix(b));
    compare(a, b) == Ordering::Equal && ra == rb && (la.is_none() || lb.is_none() || la == lb)
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
    fn same_release_only() {
        assert!(same("1.0", "1.0.0"));
        assert!(same("3.0.4", "3.0.4"));
        assert!(!same("1.0", "1.0rc1"));
        assert!(!same("1.0", "1.0.post1"));
        assert!(same("1.0rc1", "1.0-rc1"));
        assert!(!same("1.0", "1.1"));
    }

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
