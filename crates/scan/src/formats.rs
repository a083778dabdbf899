//! Machine formats: SARIF 2.1.0 for findings, CycloneDX 1.5 (components and
//! vulnerabilities) and SPDX 2.3 (packages) for the inventory.

use serde_json::{json, Value};

use crate::inventory::Inventory;
use crate::report::Report;

/// SARIF 2.1.0: one rule per vulnerability id, one result per finding.
pub fn sarif(report: &Report) -> Value {
    let mut rules = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in &report.findings {
        if seen.insert(f.id.clone()) {
            rules.push(json!({
                "id": f.id,
                "shortDescription": {"text": if f.summary.is_empty() { f.id.clone() } else { f.summary.clone() }},
                "properties": {"security-severity": f.score.map(|s| format!("{s:.1}")), "tags": ["vulnerability", f.severity.as_str()]},
            }));
        }
    }
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                crate::Severity::Critical | crate::Severity::High => "error",
                crate::Severity::Medium => "warning",
                _ => "note",
            };
            json!({
                "ruleId": f.id,
                "level": level,
                "message": {"text": format!(
                    "{} {} ({}) is affected by {}{}",
                    f.package, f.version, f.ecosystem, f.id,
                    if f.fixed.is_empty() { String::from(": no fix yet") } else { format!(": fixed in {}", f.fixed.join(", ")) }
                )},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.location}}}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "palisade-scan", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    })
}

/// CycloneDX 1.5 JSON: the inventory as components, and the findings (when given) as
/// vulnerabilities affecting them.
pub fn cyclonedx(inventory: &Inventory, report: Option<&Report>, target: &str) -> Value {
    let os = inventory.os.as_ref();
    let components: Vec<Value> = inventory
        .packages
        .iter()
        .map(|p| {
            let purl = p.purl(os);
            json!({
                "type": "library",
                "bom-ref": format!("{purl}#{}", p.location),
                "name": p.name,
                "version": p.version,
                "purl": purl,
                "properties": [{"name": "palisade:location", "value": p.location}],
            })
        })
        .collect();
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": palisade_audit::Timestamp::now().to_string(),
            "tools": [{"vendor": "palisade", "name": "palisade-scan", "version": env!("CARGO_PKG_VERSION")}],
            "component": {"type": "container", "name": target},
        },
        "components": components,
    });
    if let Some(r) = report {
        let vulns: Vec<Value> = r
            .findings
            .iter()
            .map(|f| {
                let pkg = inventory.packages.iter().find(|p| p.name == f.package && p.location == f.location);
                let reference = pkg.map(|p| format!("{}#{}", p.purl(os), p.location)).unwrap_or_default();
                json!({
                    "id": f.id,
                    "ratings": [{"severity": f.severity.as_str().to_ascii_lowercase(), "score": f.score}],
                    "description": f.summary,
                    "references": f.aliases.iter().map(|a| json!({"id": a, "source": {"name": "OSV"}})).collect::<Vec<_>>(),
                    "recommendation": if f.fixed.is_empty() { String::new() } else { format!("upgrade to {}", f.fixed[0]) },
                    "affects": [{"ref": reference}],
                })
            })
            .collect();
        doc["vulnerabilities"] = Value::Array(vulns);
    }
    doc
}

/// SPDX 2.3 JSON: the inventory as packages with purl external references.
pub fn spdx(inventory: &Inventory, target: &str) -> Value {
    let os = inventory.os.as_ref();
    let packages: Vec<Value> = inventory
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "SPDXID": format!("SPDXRef-Package-{i}"),
                "name": p.name,
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "sourceInfo": format!("found at {}", p.location),
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl(os)}],
            })
        })
        .collect();
    let relationships: Vec<Value> = (0..inventory.packages.len())
        .map(|i| json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": format!("SPDXRef-Package-{i}")}))
        .collect();
    let now = palisade_audit::Timestamp::now().to_string();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": target,
        "documentNamespace": format!("https://palisade.invalid/spdx/{}-{}", target.replace(['/', ':', '@'], "-"), now),
        "creationInfo": {"created": format!("{}Z", &now[..19.min(now.len())]), "creators": ["Tool: palisade-scan"]},
        "packages": packages,
        "relationships": relationships,
    })
}
