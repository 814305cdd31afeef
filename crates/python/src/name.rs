//! Package names, normalised as PEP 503 says: lowercase, runs of `-_.` as `-`.

/// The normalised form of a distribution name, by `pep508_rs`. A name it
/// refuses as invalid (which no index would serve) is only lowercased, so
/// that the error a caller reports still names it.
pub fn normalize(name: &str) -> String {
    use std::str::FromStr as _;
    pep508_rs::PackageName::from_str(name.trim()).map(|n| n.to_string()).unwrap_or_else(|_| name.to_ascii_lowercase())
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
