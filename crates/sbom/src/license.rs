//! Licenses as packages declare them, made valid for SBOM validators: a
//! valid SPDX expression is kept; anything else becomes a `LicenseRef-*`
//! whose text is kept word for word.

use oxbuild_image::Digest;

/// A package's license, ready for a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum License {
    /// A valid SPDX license expression using listed identifiers only.
    Spdx(String),
    /// Free text, under a document-local `LicenseRef-` identifier.
    Text {
        /// `LicenseRef-<slug>-<hash>`: the same text always gets the same id.
        id: String,
        /// The text as declared.
        text: String,
    },
}

/// Classifiers that name exactly one SPDX license. Others (`BSD License`,
/// `Apache Software License`, with no version) are kept as text.
const CLASSIFIERS: [(&str, &str); 20] = [
    ("MIT License", "MIT"),
    ("MIT No Attribution License (MIT-0)", "MIT-0"),
    ("ISC License (ISCL)", "ISC"),
    ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
    ("Mozilla Public License 1.1 (MPL 1.1)", "MPL-1.1"),
    ("Python Software Foundation License", "PSF-2.0"),
    ("GNU General Public License v2 (GPLv2)", "GPL-2.0-only"),
    ("GNU General Public License v2 or later (GPLv2+)", "GPL-2.0-or-later"),
    ("GNU General Public License v3 (GPLv3)", "GPL-3.0-only"),
    ("GNU General Public License v3 or later (GPLv3+)", "GPL-3.0-or-later"),
    ("GNU Lesser General Public License v2 (LGPLv2)", "LGPL-2.0-only"),
    ("GNU Lesser General Public License v2 or later (LGPLv2+)", "LGPL-2.0-or-later"),
    ("GNU Lesser General Public License v3 (LGPLv3)", "LGPL-3.0-only"),
    ("GNU Lesser General Public License v3 or later (LGPLv3+)", "LGPL-3.0-or-later"),
    ("GNU Affero General Public License v3", "AGPL-3.0-only"),
    ("GNU Affero General Public License v3 or later (AGPLv3+)", "AGPL-3.0-or-later"),
    ("The Unlicense (Unlicense)", "Unlicense"),
    ("Universal Permissive License (UPL)", "UPL-1.0"),
    ("Boost Software License 1.0 (BSL-1.0)", "BSL-1.0"),
    ("zlib/libpng License", "Zlib"),
];

/// The license a wheel's METADATA declares (core metadata): `License-Expression`
/// (PEP 639), else `License`, else the `License ::` classifiers. None when it
/// declares none.
pub fn from_metadata(expression: Option<&str>, text: Option<&str>, classifiers: &[String]) -> Option<String> {
    let present = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty() && *s != "UNKNOWN").map(str::to_string);
    if let Some(e) = present(expression) {
        return Some(e);
    }
    if let Some(t) = present(text) {
        return Some(t);
    }
    let named: Vec<&str> = classifiers
        .iter()
        .filter_map(|c| c.strip_prefix("License ::"))
        .map(|c| c.trim().trim_start_matches("OSI Approved ::").trim())
        .filter(|c| !c.is_empty() && *c != "OSI Approved")
        .collect();
    match named.as_slice() {
        [] => None,
        [one] => Some(CLASSIFIERS.iter().find(|(c, _)| c == one).map_or(*one, |(_, id)| id).to_string()),
        several => Some(several.join("; ")),
    }
}

impl License {
    /// `declared` as a valid expression, or as text under a `LicenseRef-`.
    pub fn parse(declared: &str) -> License {
        let declared = declared.trim();
        if let Ok(e) = spdx::Expression::parse(declared) {
            // A LicenseRef or DocumentRef in a package's own expression names
            // text this document does not have: keep the expression as text.
            let listed_only = e.requirements().all(|r| matches!(r.req.license, spdx::LicenseItem::Spdx { .. }));
            if listed_only {
                return License::Spdx(e.as_ref().to_string());
            }
        }
        let slug: String = declared
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' })
            .take(40)
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let hash = Digest::of(declared.as_bytes());
        let id = if slug.is_empty() {
            format!("LicenseRef-{}", &hash.hex()[..12])
        } else {
            format!("LicenseRef-{slug}-{}", &hash.hex()[..8])
        };
        License::Text { id, text: declared.to_string() }
    }

    /// The identifier or expression a document writes for it.
    pub fn expression(&self) -> &str {
        match self {
            License::Spdx(e) => e,
            License::Text { id, .. } => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_expressions_are_kept_and_free_text_gets_a_stable_ref() {
        assert_eq!(License::parse("MIT"), License::Spdx("MIT".into()));
        assert_eq!(License::parse("BSD-3-Clause OR Apache-2.0"), License::Spdx("BSD-3-Clause OR Apache-2.0".into()));
        let text = License::parse("Apache 2.0");
        let License::Text { id, text: kept } = &text else { panic!("{text:?}") };
        assert!(id.starts_with("LicenseRef-Apache-2.0-") && id.len() == "LicenseRef-Apache-2.0-".len() + 8, "{id}");
        assert_eq!(kept, "Apache 2.0");
        assert_eq!(License::parse("Apache 2.0"), text, "the same text gets the same id");
        assert_ne!(License::parse("Apache 2.0 ").expression(), License::parse("BSD").expression());
        let long = License::parse("Copyright (c) 2010 Someone\n\nPermission is hereby granted...");
        assert!(long.expression().starts_with("LicenseRef-Copyright-c-2010-Someone-"), "{long:?}");
        assert!(matches!(License::parse("LicenseRef-mine"), License::Text { .. }), "its text is not in the document");
        assert!(matches!(License::parse("#$%"), License::Text { ref id, .. } if id.len() == 23));
    }

    #[test]
    fn metadata_prefers_the_expression_then_the_text_then_classifiers() {
        let mit = vec!["License :: OSI Approved :: MIT License".to_string()];
        assert_eq!(from_metadata(Some("Apache-2.0"), Some("MIT"), &mit).as_deref(), Some("Apache-2.0"));
        assert_eq!(from_metadata(None, Some("BSD-3-Clause"), &mit).as_deref(), Some("BSD-3-Clause"));
        assert_eq!(from_metadata(None, Some("UNKNOWN"), &mit).as_deref(), Some("MIT"));
        let bsd = vec!["License :: OSI Approved :: BSD License".to_string()];
        assert_eq!(from_metadata(None, None, &bsd).as_deref(), Some("BSD License"));
        assert_eq!(from_metadata(None, None, &[]), None);
    }
}
