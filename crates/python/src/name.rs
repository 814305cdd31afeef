//! Package names, normalised as PEP 503 says: lowercase, runs of `-_.` as `-`.

/// The normalised form of a distribution name.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pep503() {
        assert_eq!(super::normalize("MarkupSafe"), "markupsafe");
        assert_eq!(super::normalize("zope.interface"), "zope-interface");
        assert_eq!(super::normalize("Foo__Bar-.baz"), "foo-bar-baz");
    }
}
