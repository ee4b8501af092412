//! `dist/grafana/xvs.json`, the Grafana dashboard: it is a dashboard of Grafana's current schema
//! (10/11) that imports with a Prometheus data source chosen at import (`${DS_PROMETHEUS}`),
//! filters by `instance` and `service`, its panels are time series, stats and tables laid out
//! without overlap, and every metric every query names is a family of a real scrape
//! (`tests/golden/metrics/scrape.txt`, the exporter's page of a realistic state), with label
//! matchers and `by (...)` labels the metric has.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/grafana/xvs.json");
const SCRAPE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/metrics/scrape.txt"
);
const DS: &str = "${DS_PROMETHEUS}";
/// Labels Prometheus adds to every series it scrapes, and the bucket label of histograms.
const ADDED: [&str; 3] = ["instance", "job", "le"];

/// Family → the label names its samples have (empty for a family without samples).
fn families() -> BTreeMap<String, BTreeSet<String>> {
    let page = std::fs::read_to_string(SCRAPE).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            out.insert(name.to_string(), BTreeSet::new());
        } else if !line.starts_with('#') {
            let (name, labels) = match line.split_once('{') {
                Some((n, rest)) => (n, rest.rsplit_once('}').unwrap().0),
                None => (line.split(' ').next().unwrap(), ""),
            };
            let family = family_of(&out, name).unwrap_or_else(|| panic!("{name}: no family"));
            let names = label_names(labels);
            out.get_mut(&family).unwrap().extend(names);
        }
    }
    out
}

/// The family of a sample or query name: itself, or a histogram's without `_bucket`, `_sum`,
/// `_count`.
fn family_of(families: &BTreeMap<String, BTreeSet<String>>, name: &str) -> Option<String> {
    if families.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|base| families.contains_key(*base))
        .map(str::to_string)
}

/// The label names of `a="x",b=~"y"` (values may hold commas and escaped quotes).
fn label_names(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = s;
    while let Some(q) = rest.find('"') {
        let name: String = rest[..q]
            .trim_start_matches(',')
            .trim()
            .trim_end_matches(['=', '~', '!'])
            .to_string();
        assert!(!name.is_empty(), "no label name in {s:?}");
        out.insert(name);
        // Skip the value to its closing quote.
        let value = &rest[q + 1..];
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|(_, c)| {
                let end = *c == '"' && !escaped;
                escaped = *c == '\\' && !escaped;
                end
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("unterminated value in {s:?}"));
        rest = &value[end + 1..];
    }
    out
}

/// Every `xvs_*` metric an expression names, with the label names of its selector.
fn selectors(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("xvs_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let after = &tail[end..];
        let labels = match after.strip_prefix('{') {
            Some(inner) => label_names(&inner[..inner.find('}').unwrap()]),
            None => BTreeSet::new(),
        };
        out.push((name, labels));
        rest = after;
    }
    out
}

/// The labels of every `by (...)` clause of `expr`.
fn by_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in expr.split("by (").skip(1) {
        let inside = &part[..part.find(')').unwrap()];
        out.extend(inside.split(',').map(|l| l.trim().to_string()));
    }
    out
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    serde_json::from_str(&text).expect("dist/grafana/xvs.json is JSON")
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// Every query of the dashboard: (where, expression).
fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap().to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((title.clone(), t["expr"].as_str().unwrap().to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        let name = format!("variable {}", v["name"]);
        out.push((name, v["definition"].as_str().unwrap().to_string()));
    }
    out
}

#[test]
fn the_dashboard_is_of_grafanas_current_schema() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_u64().unwrap();
    // Grafana 10.0 writes 38, 10.4 and 11.0 write 39, 11.x up to 41.
    assert!((38..=41).contains(&schema), "schemaVersion {schema}");
    assert_eq!(d["title"], "xvs");
    assert!(d["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let inputs = d["__inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
        && i["type"] == "datasource"
        && i["pluginId"] == "prometheus"));
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["instance", "service"]);
}

#[test]
fn panels_are_time_series_stats_and_tables_on_the_chosen_data_source_without_overlap() {
    let d = dashboard();
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut kinds = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        let kind = p["type"].as_str().unwrap();
        kinds.insert(kind);
        assert!(
            ["timeseries", "stat", "table", "row"].contains(&kind),
            "{title}: {kind}"
        );
        assert!(ids.insert(p["id"].as_u64().unwrap()), "{title}: id twice");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        if kind == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], DS, "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], DS, "{title}");
        }
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    for v in d["templating"]["list"].as_array().unwrap() {
        assert_eq!(v["datasource"]["uid"], DS);
    }
}

#[test]
fn every_metric_queried_is_in_a_scrape_with_the_labels_used() {
    let families = families();
    assert!(families.len() > 50, "{}", families.len());
    let mut used = BTreeSet::new();
    for (place, expr) in queries(&dashboard()) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{place}: no xvs metric in {expr}");
        let mut available: BTreeSet<String> = ADDED.iter().map(|s| s.to_string()).collect();
        for (name, labels) in found {
            let family = family_of(&families, &name)
                .unwrap_or_else(|| panic!("{place}: {name} is in no scrape family ({expr})"));
            let has = &families[&family];
            // A family without samples in the scrape (the AF_XDP statistics need sockets)
            // cannot say which labels it has.
            if !has.is_empty() {
                for l in &labels {
                    assert!(
                        has.contains(l) || ADDED.contains(&l.as_str()),
                        "{place}: {name} has no label {l} ({expr})"
                    );
                }
            }
            available.extend(has.iter().cloned());
            used.insert(family);
            if !place.starts_with("variable") {
                assert!(
                    expr.contains(&format!("{name}{{instance=~\"$instance\"")),
                    "{place}: {name} not filtered by $instance ({expr})"
                );
            }
        }
        for l in by_labels(&expr) {
            assert!(available.contains(&l), "{place}: by ({l}) in {expr}");
        }
    }
    // The issue's list: per-service connections and rates, per-real state, drops, worker
    // utilisation and batches, VRRP state, sync.
    for want in [
        "xvs_service_connections_total",
        "xvs_service_in_bytes_total",
        "xvs_real_up",
        "xvs_real_weight",
        "xvs_real_connections_active",
        "xvs_real_connections_inactive",
        "xvs_drops_total",
        "xvs_worker_busy_seconds_total",
        "xvs_worker_batch_frames",
        "xvs_vrrp_state",
        "xvs_sync_messages_sent_total",
        "xvs_sync_errors_total",
    ] {
        assert!(used.contains(want), "no panel shows {want}");
    }
}

#[test]
fn the_query_parsers_read_selectors_and_groupings() {
    let expr = r#"sum by (service, real) (rate(xvs_real_connections_total{instance=~"$instance",service=~"a,\"b"}[5m])) / xvs_real_up"#;
    let found = selectors(expr);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, "xvs_real_connections_total");
    let want: BTreeSet<String> = ["instance", "service"].map(String::from).into();
    assert_eq!(found[0].1, want);
    assert_eq!(found[1], ("xvs_real_up".to_string(), BTreeSet::new()));
    let by: BTreeSet<String> = ["real", "service"].map(String::from).into();
    assert_eq!(by_labels(expr), by);
}
