//! SPDX 2.3 JSON: one package for the image, its base, the app, every OS
//! package of the base and every installed language package, with
//! relationships between them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::{Inventory, License, uuid_for};

/// `SPDXRef-<idstring>`, where the id string allows letters, digits, `.` and `-`.
fn spdx_id(parts: &[&str], taken: &mut BTreeSet<String>) -> String {
    let raw: String =
        parts.join("-").chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    let mut id = format!("SPDXRef-{raw}");
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("SPDXRef-{raw}-{n}");
        n += 1;
    }
    id
}

/// The SPDX document for `inv`, as canonical JSON bytes.
pub fn document(inv: &Inventory) -> Vec<u8> {
    let mut taken = BTreeSet::new();
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    let mut license = |declared: Option<&str>| -> String {
        match declared.map(License::parse) {
            None => "NOASSERTION".to_string(),
            Some(License::Spdx(e)) => e,
            Some(License::Text { id, text }) => {
                extracted.insert(id.clone(), text);
                id
            }
        }
    };
    let rel =
        |a: &str, kind: &str, b: &str| json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b});
    let purl_ref = |purl: String| json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}]);

    let image_id = spdx_id(&["Image"], &mut taken);
    packages.push(json!({
        "SPDXID": image_id,
        "name": inv.image.name,
        "versionInfo": inv.image.digest.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": inv.image.digest.hex()}],
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": purl_ref(inv.image.purl()),
        "comment": format!("the image for {}", inv.image.platform),
    }));
    relationships.push(rel("SPDXRef-DOCUMENT", "DESCRIBES", &image_id));

    let base_id = spdx_id(&["Base"], &mut taken);
    let mut base = json!({
        "SPDXID": base_id,
        "name": inv.base.reference,
        "versionInfo": inv.base.digest.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": inv.base.digest.hex()}],
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": purl_ref(inv.base.purl()),
    });
    let distro = inv.base.os.distro.as_ref();
    base["comment"] = json!(match (inv.unknown_os(), distro) {
        (Some(unknown), _) => unknown,
        (None, Some(d)) => format!(
            "the base image: {} (OS packages from {})",
            d.pretty_name,
            inv.base.os.database.as_deref().unwrap_or("")
        ),
        (None, None) => format!("the base image (OS packages from {})", inv.base.os.database.as_deref().unwrap_or("")),
    });
    packages.push(base);
    relationships.push(rel(&image_id, "DESCENDANT_OF", &base_id));

    let app_id = spdx_id(&["App"], &mut taken);
    let mut app = json!({
        "SPDXID": app_id,
        "name": inv.app.name,
        "downloadLocation": inv.app.source.as_ref().map_or("NOASSERTION".to_string(), |s| match &inv.app.commit {
            Some(c) => format!("git+{s}@{c}"),
            None => format!("git+{s}"),
        }),
        "filesAnalyzed": false,
        "primaryPackagePurpose": "APPLICATION",
    });
    if let Some(v) = &inv.app.version {
        app["versionInfo"] = json!(v);
    }
    if let Some(c) = &inv.app.commit {
        app["sourceInfo"] = json!(format!("built from git commit {c}"));
    }
    packages.push(app);
    relationships.push(rel(&image_id, "CONTAINS", &app_id));

    for p in &inv.base.os.packages {
        let id = spdx_id(
            &[serde_json::to_value(p.manager).unwrap().as_str().unwrap_or("os"), &p.name, &p.version],
            &mut taken,
        );
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license(p.license.as_deref()),
            "copyrightText": "NOASSERTION",
            "externalRefs": purl_ref(p.purl(distro)),
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        });
        if let Some(s) = &p.source {
            pkg["sourceInfo"] = json!(format!("built from source package {s}"));
        }
        packages.push(pkg);
        relationships.push(rel(&base_id, "CONTAINS", &id));
        relationships.push(rel(&image_id, "CONTAINS", &id));
    }

    let sorted = inv.sorted_packages();
    let mut ids = Vec::new();
    for p in &sorted {
        let id = spdx_id(&[&p.ecosystem, &p.key(), &p.version], &mut taken);
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": p.url.clone().unwrap_or_else(|| "NOASSERTION".to_string()),
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license(p.license.as_deref()),
            "copyrightText": "NOASSERTION",
            "externalRefs": purl_ref(p.purl()),
            "primaryPackagePurpose": "LIBRARY",
        });
        if let Some(f) = &p.file {
            pkg["packageFileName"] = json!(f);
        }
        if let Some(sha) = &p.sha256 {
            pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha}]);
        }
        if let Some(s) = &p.source {
            pkg["sourceInfo"] = json!(format!("from {s}"));
        }
        if let Some(l) = &p.layer {
            pkg["comment"] = json!(format!("installed in layer {l}"));
        }
        packages.push(pkg);
        relationships.push(rel(&image_id, "CONTAINS", &id));
        ids.push(id);
    }
    for (id, deps) in ids.iter().zip(crate::dependency_ids(&sorted, &ids)) {
        for dep in deps {
            relationships.push(rel(id, "DEPENDS_ON", dep));
        }
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", inv.image.name, inv.image.digest),
        "documentNamespace": format!("https://oxbuild.dev/spdx/{}", uuid_for("spdx", &inv.image.digest)),
        "creationInfo": {
            "created": crate::timestamp(inv.created),
            "creators": [format!("Tool: oxbuild-{}", inv.tool_version)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if let Some(unknown) = inv.unknown_os() {
        doc["comment"] = json!(unknown);
    }
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(
            extracted
                .into_iter()
                .map(|(id, text)| {
                    let name = text.lines().next().unwrap_or("").chars().take(80).collect::<String>();
                    json!({"licenseId": id, "extractedText": text, "name": if name.is_empty() { id.clone() } else { name }})
                })
                .collect(),
        );
    }
    oxbuild_image::canonical_json(&doc)
}
