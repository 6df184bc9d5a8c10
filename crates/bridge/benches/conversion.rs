//! The conversion alone (JSON payload → one line-protocol line), on one core. Goal from issue 4:
//! ≥ 1,000,000 payloads/s. `cargo bench -p insights-bridge --bench conversion`; criterion reports
//! the throughput in elements (payloads) per second.

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
    group.finish();
}

criterion_group!(benches, conversion);
criterion_main!(benches);
