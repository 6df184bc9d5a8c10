//! Exact sums of floating-point numbers, mergeable in any order.
//!
//! `sum` and `mean` are promised exact, yet a window's sum is built point by point at ingest and
//! then merged with its neighbours at query time, in an order that differs from any brute-force
//! sum over the same values. Plain `f64` addition would make the answer depend on that order.
//! So each window keeps Shewchuk's non-overlapping partials (the algorithm behind Python's
//! `math.fsum`): a short list of doubles whose mathematical sum is exactly the sum of every value
//! added. Merging adds the other list's partials, exactly. Reading rounds the exact sum once,
//! to nearest, ties to even, so the answer is the correctly rounded sum whatever the order.
//!
//! Typical metric values need one to three partials. A sum past ±1.8e308 (beyond `f64`) reads
//! as ±infinity from then on.

/// The exact sum of the values added, as non-overlapping partials in increasing magnitude.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExactSum {
    partials: Partials,
}

/// How many partials are held without a heap allocation: every window has a sum, and most
/// sums need one to three partials.
const INLINE: usize = 3;

/// The partials: inline while they are few, on the heap past that.
#[derive(Debug, Clone, PartialEq)]
enum Partials {
    Inline(u8, [f64; INLINE]),
    Heap(Vec<f64>),
}

impl Default for Partials {
    fn default() -> Self {
        Partials::Inline(0, [0.0; INLINE])
    }
}

impl Partials {
    fn as_slice(&self) -> &[f64] {
        match self {
            Partials::Inline(n, a) => &a[..usize::from(*n)],
            Partials::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [f64] {
        match self {
            Partials::Inline(n, a) => &mut a[..usize::from(*n)],
            Partials::Heap(v) => v,
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Partials::Inline(n, _) => *n = (*n).min(len as u8),
            Partials::Heap(v) => v.truncate(len),
        }
    }

    fn push(&mut self, x: f64) {
        match self {
            Partials::Inline(n, a) if usize::from(*n) < INLINE => {
                a[usize::from(*n)] = x;
                *n += 1;
            }
            Partials::Inline(_, a) => {
                let mut v = Vec::with_capacity(2 * INLINE + 2);
                v.extend_from_slice(a);
                v.push(x);
                *self = Partials::Heap(v);
            }
            Partials::Heap(v) => v.push(x),
        }
    }

    fn clear(&mut self) {
        self.truncate(0);
    }
}

impl ExactSum {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_partials(partials: Vec<f64>) -> Self {
        let mut s = Self::new();
        if partials.len() > INLINE {
            s.partials = Partials::Heap(partials);
        } else {
            partials.into_iter().for_each(|p| s.partials.push(p));
        }
        s
    }

    pub(crate) fn partials(&self) -> &[f64] {
        self.partials.as_slice()
    }

    pub(crate) fn clear(&mut self) {
        self.partials.clear();
    }

    /// Heap bytes held, for the memory estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.partials {
            Partials::Inline(..) => 0,
            Partials::Heap(v) => v.capacity() * std::mem::size_of::<f64>(),
        }
    }

    fn overflowed(&self) -> bool {
        let p = self.partials();
        p.len() == 1 && !p[0].is_finite()
    }

    pub(crate) fn add(&mut self, mut x: f64) {
        if self.overflowed() || !x.is_finite() {
            let total = self.partials().first().copied().unwrap_or(0.0) + x;
            self.partials.clear();
            self.partials.push(total);
            return;
        }
        let mut kept = 0;
        let partials = self.partials.as_mut_slice();
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                // Past the range of f64: exactness cannot be kept; say so with an infinity.
                self.partials.clear();
                self.partials.push(hi);
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    pub(crate) fn merge(&mut self, other: &ExactSum) {
        if self.partials().is_empty() {
            // The other's partials already are a valid non-overlapping list.
            for &p in other.partials() {
                self.partials.push(p);
            }
            return;
        }
        for &p in other.partials() {
            self.add(p);
        }
    }

    /// The exact sum rounded once to the nearest `f64` (ties to even), as CPython's `fsum` does.
    pub(crate) fn value(&self) -> f64 {
        let p = self.partials();
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // `hi + lo` is exact; if the partials below have the same sign as `lo`, the true sum is
        // past the halfway point that round-to-even would have resolved the other way.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> f64 {
        let mut s = ExactSum::new();
        for &v in values {
            s.add(v);
        }
        s.value()
    }

    #[test]
    fn exact_where_naive_addition_is_not() {
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[1e308, 1e308, -1e308]), f64::INFINITY); // documented: past the range
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[0.1, 0.2, 0.3]), 0.6);
        // The half-way correction: 1 + 2^-53 + 2^-106 is just above the midpoint.
        assert_eq!(
            sum(&[1.0, 2f64.powi(-53), 2f64.powi(-106)]),
            1.0 + f64::EPSILON
        );
        assert_eq!(sum(&[1.0, 2f64.powi(-53)]), 1.0); // exact midpoint: ties to even
    }

    #[test]
    fn more_partials_than_held_inline() {
        let big = [1e300, 1e200, 1e100, 1.0, 1e-100, 1e-200];
        let mut s = ExactSum::new();
        big.iter().for_each(|&v| s.add(v));
        assert_eq!(s.partials().len(), big.len());
        assert!(s.heap_bytes() > 0);
        assert_eq!(s.value(), 1e300);
        let copy = ExactSum::from_partials(s.partials().to_vec());
        assert_eq!(copy, s);
        for v in [-1e300, -1e200, -1e100, -1e-100, -1e-200] {
            s.add(v);
        }
        assert_eq!(s.value(), 1.0);
        let mut merged = ExactSum::new();
        merged.merge(&copy);
        merged.merge(&ExactSum::from_partials(vec![-1e300, 2.0]));
        assert_eq!(merged.value(), 1e200);
        assert_eq!(ExactSum::from_partials(vec![0.5]).heap_bytes(), 0);
    }

    #[test]
    fn merging_in_any_order_gives_the_same_bits() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 / 997.0 - 0.4)
            .collect();
        let whole = sum(&values);
        for chunk in [1, 3, 7, 60, 333] {
            let mut parts: Vec<ExactSum> = values
                .chunks(chunk)
                .map(|c| {
                    let mut s = ExactSum::new();
                    c.iter().for_each(|&v| s.add(v));
                    s
                })
                .collect();
            parts.reverse();
            let mut merged = ExactSum::new();
            for p in &parts {
                merged.merge(p);
            }
            assert_eq!(merged.value().to_bits(), whole.to_bits(), "chunk {chunk}");
        }
    }
}
