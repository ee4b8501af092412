//! The move to `prometheus-client`, checked: the realistic state's page (see `fixture`) parsed
//! in both formats the library encodes has the same families (name, type, help), the same
//! series (name and label set) and the same values as the page the hand-written renderer made
//! of the same state (`tests/golden/metrics/scrape.txt`, kept as it was).
//!
//! What may differ, and is normalised here: the order of families, series and labels; the
//! spelling of numbers (`72` and `72.0`, `le="1"` and `le="1.0"`: compared as numbers);
//! OpenMetrics' own forms (a counter family named without `_total`, `xvs_build_info` an
//! `info` family `xvs_build`, `# EOF`). The one value that depends on the clock,
//! `xvs_sync_peer_lag_seconds`, is compared within a second.
//!
//! The library's pages themselves are pinned too (`scrape.prom`, `scrape.om` beside the
//! golden scrape; `XVS_WRITE_GOLDEN=1` rewrites those two, never `scrape.txt`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{fixture, registry, render, Format};

/// A series: metric name and its labels, sorted.
type Series = (String, BTreeSet<(String, String)>);

/// A page, parsed.
#[derive(Debug, Default)]
struct Parsed {
    /// Family name (a counter's with `_total`, as in the text format) → (type, help).
    families: BTreeMap<String, (String, String)>,
    values: BTreeMap<Series, f64>,
    eof: bool,
}

/// Undoes the text format's escapes (`\\`, `\"`, `\n`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("a dangling escape in {s:?}"),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// `name="value",...` (values escaped) into a set; `le` as a number.
fn labels(mut s: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").expect("a label");
        // The value ends at the first quote that is not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match (c, escaped) {
                ('\\', false) => escaped = true,
                ('"', false) => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end.expect("a closing quote");
        let mut value = unescape(&rest[..end]);
        if name == "le" && value != "+Inf" {
            value = value.parse::<f64>().expect("a number").to_string();
        }
        assert!(out.insert((name.to_string(), value)), "{name} twice");
        s = rest[end + 1..].trim_start_matches(',');
    }
    out
}

/// One sample line: its series and value.
fn sample(line: &str) -> (Series, f64) {
    let (series, value) = line.rsplit_once(' ').expect("a value");
    let value: f64 = value.parse().expect("a number");
    match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').expect("a closing brace");
            ((name.to_string(), labels(inner)), value)
        }
        None => ((series.to_string(), BTreeSet::new()), value),
    }
}

/// The family a sample belongs to, from its name.
fn family_of<'a>(families: &'a BTreeMap<String, (String, String)>, name: &'a str) -> &'a str {
    if families.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families.get(base).is_some_and(|(t, _)| t == "histogram") {
                return base;
            }
        }
    }
    panic!("{name}: a sample of no family declared before it")
}

/// Parses a page of the text format, or of OpenMetrics when `open_metrics` (its counter
/// families are renamed with `_total` and its info families with `_info`, typed gauge, as
/// the text format names and types them).
fn parse(page: &str, open_metrics: bool) -> Parsed {
    let mut p = Parsed::default();
    let mut helps = BTreeMap::new();
    for line in page.lines() {
        assert!(!p.eof, "a line after # EOF: {line}");
        if line == "# EOF" {
            p.eof = true;
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            helps.insert(name.to_string(), unescape(help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("a type");
            let help = helps
                .remove(name)
                .unwrap_or_else(|| panic!("{name}: no HELP"));
            let (family, kind) = match (open_metrics, kind) {
                (true, "counter") => (format!("{name}_total"), kind),
                (true, "info") => (format!("{name}_info"), "gauge"),
                _ => (name.to_string(), kind),
            };
            let new = p.families.insert(family, (kind.to_string(), help));
            assert!(new.is_none(), "{name} declared twice");
        } else {
            assert!(!line.starts_with('#'), "unexpected: {line}");
            let ((name, labels), value) = sample(line);
            family_of(&p.families, &name);
            let new = p.values.insert((name.clone(), labels), value);
            assert!(new.is_none(), "{name}: a series twice");
        }
    }
    assert!(helps.is_empty(), "HELP without TYPE: {helps:?}");
    p
}

/// The differences between the hand-written renderer's page and the library's.
fn differences(before: &Parsed, after: &Parsed) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = before
        .families
        .keys()
        .chain(after.families.keys())
        .collect();
    for name in names {
        let (b, a) = (before.families.get(name), after.families.get(name));
        if b != a {
            out.push(format!("family {name}: {b:?} before, {a:?} after"));
        }
    }
    let series: BTreeSet<&Series> = before.values.keys().chain(after.values.keys()).collect();
    for s in series {
        let (b, a) = (before.values.get(s), after.values.get(s));
        let same = match (b, a) {
            (Some(b), Some(a)) if s.0 == "xvs_sync_peer_lag_seconds" => (b - a).abs() < 1.0,
            (b, a) => b == a,
        };
        if !same {
            out.push(format!("{s:?}: {b:?} before, {a:?} after"));
        }
    }
    out
}

/// The library's page of the realistic state in `format`, the version masked.
fn library_page(format: Format) -> String {
    let registry = registry(Arc::new(fixture::sources()));
    render(&registry, format).replace(env!("CARGO_PKG_VERSION"), "VERSION")
}

fn golden() -> Parsed {
    let text = std::fs::read_to_string(fixture::GOLDEN).unwrap();
    parse(&text, false)
}

#[test]
fn the_text_format_page_is_the_hand_written_one() {
    let page = library_page(Format::Text);
    let after = parse(&page, false);
    assert!(!after.eof);
    let diff = differences(&golden(), &after);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert!(after.values.len() > 300, "{}", after.values.len());
    // What the e2e tests and other consumers parse it with.
    prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap();
}

#[test]
fn the_open_metrics_page_is_the_hand_written_one() {
    let page = library_page(Format::OpenMetrics);
    let after = parse(&page, true);
    assert!(after.eof, "no # EOF");
    let diff = differences(&golden(), &after);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// The library's pages byte for byte (but for the sync lag's value): a change of the
/// library's output shows here first.
#[test]
fn the_library_pages_are_pinned() {
    for (format, ext) in [(Format::Text, "prom"), (Format::OpenMetrics, "om")] {
        let page = library_page(format);
        let path = fixture::GOLDEN.replace(".txt", &format!(".{ext}"));
        if std::env::var_os("XVS_WRITE_GOLDEN").is_some() {
            std::fs::write(&path, &page).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        let mask = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| match l.starts_with("xvs_sync_peer_lag_seconds{") {
                    true => l.rsplit_once(' ').unwrap().0.to_string(),
                    false => l.to_string(),
                })
                .collect()
        };
        assert_eq!(mask(&page), mask(&want), "{path}");
    }
}

#[test]
fn the_parser_reads_escapes_numbers_and_open_metrics_counters() {
    let page = "# HELP a_b A \\\\ help.\n# TYPE a_b counter\na_b_total{x=\"q\\\"uo\\\\te\\n\",le=\"1.0\"} 2.0\n# EOF\n";
    let p = parse(page, true);
    assert!(p.eof);
    assert_eq!(
        p.families["a_b_total"],
        ("counter".to_string(), "A \\ help.".to_string())
    );
    let labels: BTreeSet<(String, String)> = [("x", "q\"uo\\te\n"), ("le", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(p.values[&("a_b_total".to_string(), labels)], 2.0);
}
