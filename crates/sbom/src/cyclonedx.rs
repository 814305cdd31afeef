//! CycloneDX 1.6 JSON: the image as the BOM's subject, its base, the app,
//! the base's OS packages and every installed language package, with the
//! dependency graph the locks record.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{Inventory, License, uuid_for};

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({"name": format!("oxbuild:{name}"), "value": value.into()})
}

/// A `bom-ref` not used before in this BOM.
fn unique(r: String, taken: &mut BTreeSet<String>) -> String {
    let mut out = r.clone();
    let mut n = 2;
    while !taken.insert(out.clone()) {
        out = format!("{r}#{n}");
        n += 1;
    }
    out
}

fn licenses(declared: Option<&str>) -> Option<Value> {
    Some(match License::parse(declared?) {
        License::Spdx(e) => json!([{"expression": e}]),
        License::Text { text, .. } => json!([{"license": {"name": text}}]),
    })
}

/// The CycloneDX BOM for `inv`, as canonical JSON bytes.
pub fn document(inv: &Inventory) -> Vec<u8> {
    let mut taken = BTreeSet::new();
    let mut components = Vec::new();
    let image_ref = unique("image".into(), &mut taken);
    let base_ref = unique("base".into(), &mut taken);
    let app_ref = unique("app".into(), &mut taken);

    let mut base = json!({
        "type": "container",
        "bom-ref": base_ref,
        "name": inv.base.reference,
        "version": inv.base.digest.as_str(),
        "purl": inv.base.purl(),
        "hashes": [{"alg": "SHA-256", "content": inv.base.digest.hex()}],
    });
    if let Some(unknown) = inv.unknown_os() {
        base["properties"] = json!([prop("os-packages", unknown)]);
    } else if let Some(d) = &inv.base.os.distro {
        base["description"] = json!(d.pretty_name);
    }
    components.push(base);

    let mut app = json!({"type": "application", "bom-ref": app_ref, "name": inv.app.name});
    if let Some(v) = &inv.app.version {
        app["version"] = json!(v);
    }
    let mut app_props = Vec::new();
    if let Some(c) = &inv.app.commit {
        app_props.push(prop("git-commit", c.clone()));
    }
    if let Some(s) = &inv.app.source {
        app["externalReferences"] = json!([{"type": "vcs", "url": s}]);
    }
    if !app_props.is_empty() {
        app["properties"] = json!(app_props);
    }
    components.push(app);

    let distro = inv.base.os.distro.as_ref();
    let mut os_refs = Vec::new();
    for p in &inv.base.os.packages {
        let purl = p.purl(distro);
        let r = unique(purl.clone(), &mut taken);
        let mut c = json!({"type": "library", "bom-ref": r, "name": p.name, "version": p.version, "purl": purl});
        if let Some(l) = licenses(p.license.as_deref()) {
            c["licenses"] = l;
        }
        let mut props = vec![prop("package-database", inv.base.os.database.clone().unwrap_or_default())];
        if let Some(s) = &p.source {
            props.push(prop("source-package", s.clone()));
        }
        c["properties"] = json!(props);
        components.push(c);
        os_refs.push(r);
    }

    let sorted = inv.sorted_packages();
    let mut refs = Vec::new();
    for p in &sorted {
        let purl = p.purl();
        let r = unique(purl.clone(), &mut taken);
        let mut c = json!({"type": "library", "bom-ref": r, "name": p.name, "version": p.version, "purl": purl});
        if let Some(sha) = &p.sha256 {
            c["hashes"] = json!([{"alg": "SHA-256", "content": sha}]);
        }
        if let Some(l) = licenses(p.license.as_deref()) {
            c["licenses"] = l;
        }
        if let Some(u) = &p.url {
            c["externalReferences"] = json!([{"type": "distribution", "url": u}]);
        }
        let mut props = Vec::new();
        if let Some(f) = &p.file {
            props.push(prop("file", f.clone()));
        }
        if let Some(s) = &p.source {
            props.push(prop("index", s.clone()));
        }
        if let Some(l) = &p.layer {
            props.push(prop("layer", l.to_string()));
        }
        if !props.is_empty() {
            c["properties"] = json!(props);
        }
        components.push(c);
        refs.push(r);
    }

    let mut dependencies = Vec::new();
    let mut top = vec![base_ref.clone(), app_ref.clone()];
    top.extend(refs.iter().cloned());
    dependencies.push(json!({"ref": image_ref, "dependsOn": top}));
    dependencies.push(json!({"ref": base_ref, "dependsOn": os_refs}));
    for (r, deps) in refs.iter().zip(crate::dependency_ids(&sorted, &refs)) {
        dependencies.push(json!({"ref": r, "dependsOn": deps}));
    }

    let mut image = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": inv.image.name,
        "version": inv.image.digest.as_str(),
        "purl": inv.image.purl(),
        "hashes": [{"alg": "SHA-256", "content": inv.image.digest.hex()}],
    });
    image["properties"] = json!([prop("platform", inv.image.platform.clone())]);
    let bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_for("cyclonedx", &inv.image.digest)),
        "version": 1,
        "metadata": {
            "timestamp": crate::timestamp(inv.created),
            "tools": {"components": [{"type": "application", "name": "oxbuild", "version": inv.tool_version}]},
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    });
    oxbuild_image::canonical_json(&bom)
}
