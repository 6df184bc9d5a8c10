//! The conversion alone (JSON payload → one line-protocol line), on one core, against parsing
//! the same JSON alone: into a `serde_json::Value` (what a converter written plainly starts
//! with) and into `IgnoredAny` (validation only, the floor of any parse). Absolute figures
//! differ 2–3x between machines of this kind, so the goal is a ratio: the conversion at least
//! as fast as the `Value` parse. `scripts/bench-bridge` prints the ratios; criterion reports each
//! throughput in elements (payloads) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use insights_bridge::Mapping;

mod sample;

fn conversion(c: &mut Criterion) {
    // 4096 distinct payloads, so the branch predictor and caches see varied input, not one string.
    let messages: Vec<String> = (0..4096).map(sample::payload).collect();
    let mapping = Mapping::default();
    let mut out = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("conversion");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("payload_to_line", |b| {
        b.iter(|| {
            out.clear();
            for m in &messages {
                mapping.encode(m.as_bytes(), &mut out).unwrap();
            }
            std::hint::black_box(&out);
        })
    });
    group.bench_function("parse_to_value", |b| {
        b.iter(|| {
            for m in &messages {
                std::hint::black_box(serde_json::from_str::<serde_json::Value>(m).unwrap());
            }
        })
    });
    group.bench_function("parse_to_ignored_any", |b| {
        b.iter(|| {
            for m in &messages {
                std::hint::black_box(serde_json::from_str::<serde::de::IgnoredAny>(m).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, conversion);
criterion_main!(benches);
