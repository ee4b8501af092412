//! The few shapes every family of the page takes, over `prometheus-client`'s encoder: a counter,
//! a gauge or a histogram family with its samples, and the label sets xvs uses. A family is
//! named as the page shows it in the Prometheus text format (a counter ends in `_total`, as in
//! CONTRACT.md); the library derives the OpenMetrics form (family `xvs_drops`, samples
//! `xvs_drops_total`).

use std::fmt::{Display, Error, Write as _};
use std::net::SocketAddr;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabel, EncodeLabelSet,
    EncodeLabelValue, LabelSetEncoder, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::datapath::Service;

/// The result of encoding one family (the encoder writes to a `String`: it fails only if a
/// value's own formatting does).
pub type Encoded = Result<(), Error>;

/// No label: a family with one sample.
pub const NO_LABELS: [(&str, &str); 0] = [];

/// A label value (the encoder escapes `\\`, `"` and newlines).
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    /// Written with its `Display`.
    Shown(&'a dyn Display),
}

impl EncodeLabelValue for Value<'_> {
    fn encode(&self, e: &mut LabelValueEncoder) -> Encoded {
        match self {
            Value::Str(s) => e.write_str(s),
            Value::Shown(v) => write!(e, "{v}"),
        }
    }
}

/// One label `(name, value)` of any `Display` value.
pub fn label<'a>(name: &'static str, value: &'a dyn Display) -> (&'static str, Value<'a>) {
    (name, Value::Shown(value))
}

/// One label `(name, value)` of a string value.
pub fn label_str<'a>(name: &'static str, value: &'a str) -> (&'static str, Value<'a>) {
    (name, Value::Str(value))
}

/// The labels of a service (`service`, `vip`, `port`, `proto`) and, for a real or sorry
/// server, `real` (`ADDR:PORT`, `[ADDR]:PORT` for IPv6).
pub struct ServiceLabels<'a> {
    pub service: &'a Service,
    pub real: Option<SocketAddr>,
}

impl EncodeLabelSet for ServiceLabels<'_> {
    fn encode(&self, e: &mut LabelSetEncoder) -> Encoded {
        let s = self.service;
        label("service", &s.name).encode(e.encode_label())?;
        label("vip", &s.key.vip).encode(e.encode_label())?;
        label("port", &s.key.port).encode(e.encode_label())?;
        label("proto", &s.key.proto).encode(e.encode_label())?;
        match &self.real {
            Some(r) => label("real", r).encode(e.encode_label()),
            None => Ok(()),
        }
    }
}

/// A family of type `kind` named `name`: its descriptor, then one sample per `(labels, value)`
/// of `samples`, each written by `sample`.
fn family<L, V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
    sample: impl Fn(MetricEncoder<'_>, &V) -> Encoded,
) -> Encoded
where
    L: EncodeLabelSet,
{
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        sample(m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

/// A counter family: `name` ends in `_total` (the sample name; the library writes the
/// OpenMetrics family name without it).
pub fn counter<L, V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> Encoded
where
    L: EncodeLabelSet,
    V: EncodeCounterValue,
{
    debug_assert!(name.ends_with("_total"), "{name}: a counter ends in _total");
    let name = name.strip_suffix("_total").unwrap_or(name);
    family(e, name, help, MetricType::Counter, samples, |mut m, v| {
        m.encode_counter::<NoLabelSet, V, f64>(v, None)
    })
}

/// A gauge family.
pub fn gauge<L, V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> Encoded
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue,
{
    family(e, name, help, MetricType::Gauge, samples, |mut m, v| {
        m.encode_gauge(v)
    })
}

/// An info family: one sample of value 1 with `labels`. `name` ends in `_info`, the sample's
/// name (the text format types it a gauge; OpenMetrics names the family without `_info` and
/// types it `info`).
pub fn info(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: impl EncodeLabelSet,
) -> Encoded {
    debug_assert!(
        name.ends_with("_info"),
        "{name}: an info family ends in _info"
    );
    let family = name.strip_suffix("_info").unwrap_or(name);
    e.encode_descriptor(family, help, None, MetricType::Info)?
        .encode_info(&labels)
}

/// One histogram: observations per bucket (not cumulative: the encoder sums them), each
/// bucket's upper bound, the last one `+Inf` (`f64::INFINITY`).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

/// A histogram family (`_bucket{le}`, `_sum`, `_count`).
pub fn histogram<L>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, Histogram)>,
) -> Encoded
where
    L: EncodeLabelSet,
{
    family(e, name, help, MetricType::Histogram, samples, |mut m, h| {
        m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
    })
}

/// Nanoseconds as seconds: the `f64` nearest to the exact decimal value below 2^53 ns (104
/// days), within a nanosecond per 2^53 ns past it.
pub fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}
