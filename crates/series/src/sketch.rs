//! The quantile sketch of a window: DataDog's DDSketch (crate `sketches-ddsketch`), with a
//! relative error of [`RELATIVE_ERROR`] (1%): a quantile read from a sketch is within 1% of the
//! exact one, `|estimate − exact| ≤ 0.01·|exact|`, for every |value| ≥ 1e-9 (values closer to
//! zero than that are counted as zero). The exact quantile is the value of rank
//! `⌊q·(n−1)⌋` in the window's sorted values, as the sketch defines it. Sketches merge without
//! adding error, which is what lets a 1-hour window be read from sixty 1-minute ones.
//!
//! A live DDSketch holds its bins densely (at least 128 of them, 1 KiB, per sign), far more than
//! a finished window needs. So only the newest [`LIVE_WINDOWS`] windows of a series stay live;
//! older ones are frozen into the crate's compact binary encoding (the one DataDog's Java
//! library reads: varint bin deltas and counts, typically 50 to a few hundred bytes), and thawed
//! again only if a late point arrives for them or a query merges them.
//!
//! Most windows hold far fewer values than that costs: a version called once a minute puts one
//! value in each 1-minute window. A window of at most [`SMALL_VALUES`] values keeps the values
//! themselves instead (8 bytes each, no sketch built, none encoded when it leaves the live zone);
//! merged into a query's sketch value by value, they answer exactly as a sketch built from them
//! would, since a sketch's answer depends only on how many values fell into each bin (and its
//! minimum and maximum).

use sketches_ddsketch::{Config, DDSketch};

/// The sketch's relative error: quantiles are within 1% of the exact ones.
pub const RELATIVE_ERROR: f64 = 0.01;
/// The bins a sketch may grow to before it collapses its lowest ones: 2048 bins of 1% cover
/// values spanning a factor of about 10^17 (1e-9 to 1e8, say) without any collapse.
const MAX_BINS: u32 = 2048;
/// Values closer to zero than this are counted as zero.
const MIN_VALUE: f64 = 1e-9;

/// How many of a series' newest windows, per level, keep a live sketch.
pub(crate) const LIVE_WINDOWS: usize = 3;
/// A window keeps up to this many values as they are before it builds a sketch of them: 128
/// bytes at most, about what a frozen sketch of as many values takes.
pub(crate) const SMALL_VALUES: usize = 16;

pub(crate) fn config() -> Config {
    Config::new(RELATIVE_ERROR, MAX_BINS, MIN_VALUE)
}

pub(crate) fn new_sketch() -> DDSketch {
    DDSketch::new(config())
}

/// A window's sketch: its few values, live (cheap to add to) or frozen (compact).
#[derive(Clone)]
pub(crate) enum Sketch {
    /// A window's first value (held inline: most 1-minute windows never see a second).
    One(f64),
    /// Two to [`SMALL_VALUES`] values, in arrival order.
    Small(Vec<f64>),
    Live(Box<DDSketch>),
    Frozen(Box<[u8]>),
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sketch::One(_) => write!(f, "One"),
            Sketch::Small(v) => write!(f, "Small({} values)", v.len()),
            Sketch::Live(s) => write!(f, "Live({} values)", s.count()),
            Sketch::Frozen(b) => write!(f, "Frozen({} bytes)", b.len()),
        }
    }
}

impl Sketch {
    pub(crate) fn with(value: f64) -> Self {
        Sketch::One(value)
    }

    /// The values of a small window (`None` for a sketch).
    pub(crate) fn values(&self) -> Option<&[f64]> {
        match self {
            Sketch::One(v) => Some(std::slice::from_ref(v)),
            Sketch::Small(values) => Some(values),
            Sketch::Live(_) | Sketch::Frozen(_) => None,
        }
    }

    /// A small window of `values` (1 to [`SMALL_VALUES`] of them), as the snapshot stores it.
    pub(crate) fn of_values(values: Vec<f64>) -> Self {
        match values[..] {
            [one] => Sketch::One(one),
            _ => Sketch::Small(values),
        }
    }

    pub(crate) fn add(&mut self, value: f64) {
        match self {
            Sketch::One(first) => {
                let mut values = Vec::with_capacity(4);
                values.extend([*first, value]);
                *self = Sketch::Small(values);
            }
            Sketch::Small(values) if values.len() < SMALL_VALUES => {
                if values.len() == values.capacity() {
                    // Straight to the limit: one reallocation, not two.
                    values.reserve_exact(SMALL_VALUES - values.len());
                }
                values.push(value);
            }
            Sketch::Small(values) => {
                let mut s = Box::new(new_sketch());
                for &v in values.iter() {
                    s.add(v);
                }
                s.add(value);
                *self = Sketch::Live(s);
            }
            Sketch::Live(s) => s.add(value),
            Sketch::Frozen(_) => {
                let mut s = Box::new(self.thawed());
                s.add(value);
                *self = Sketch::Live(s);
            }
        }
    }

    /// Whether this holds a live DDSketch (the only form worth freezing).
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, Sketch::Live(_))
    }

    /// Encodes a live sketch; a small one is compact already and stays as it is.
    pub(crate) fn freeze(&mut self) {
        if let Sketch::Live(s) = self {
            *self = Sketch::Frozen(s.to_java_bytes().into_boxed_slice());
        }
    }

    /// A live copy.
    pub(crate) fn thawed(&self) -> DDSketch {
        match self {
            Sketch::One(_) | Sketch::Small(_) => {
                let mut s = new_sketch();
                self.merge_into(&mut s);
                s
            }
            Sketch::Live(s) => (**s).clone(),
            // Frozen bytes were checked when made or loaded; a failure here is a bug, and an
            // empty sketch (which only widens the error) is better than a panic in a query.
            Sketch::Frozen(b) => DDSketch::from_java_bytes(b).unwrap_or_else(|_| new_sketch()),
        }
    }

    /// Merges this window's values into `acc`.
    pub(crate) fn merge_into(&self, acc: &mut DDSketch) {
        let merged = match self {
            Sketch::One(v) => {
                acc.add(*v);
                Ok(())
            }
            Sketch::Small(values) => {
                for &v in values {
                    acc.add(v);
                }
                Ok(())
            }
            Sketch::Live(s) => acc.merge(s),
            Sketch::Frozen(_) => acc.merge(&self.thawed()),
        };
        debug_assert!(merged.is_ok(), "every sketch has the same configuration");
    }

    /// The encoded form of a sketch, for the snapshot (`None`: small, its values are stored).
    pub(crate) fn encoded(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Sketch::One(_) | Sketch::Small(_) => None,
            Sketch::Live(s) => Some(std::borrow::Cow::Owned(s.to_java_bytes())),
            Sketch::Frozen(b) => Some(std::borrow::Cow::Borrowed(b)),
        }
    }

    /// Bytes held, for the memory estimate: the small values' buffer, a live sketch's struct
    /// and its dense bins, or the frozen encoding.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Sketch::One(_) => 0,
            Sketch::Small(values) => values.capacity() * 8,
            Sketch::Live(s) => std::mem::size_of::<DDSketch>() + s.length().max(1) * 8,
            Sketch::Frozen(b) => b.len(),
        }
    }
}

/// The quantile `q` of a sketch (`None` when empty).
pub(crate) fn quantile(s: &DDSketch, q: f64) -> Option<f64> {
    s.quantile(q).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_sketches_decode_to_our_configuration_and_merge() {
        let mut a = Sketch::with(0.5);
        for i in 1..100 {
            a.add(f64::from(i) / 100.0 - 0.3);
        }
        let live = a.thawed();
        a.freeze();
        assert!(!a.is_live());
        let Sketch::Frozen(bytes) = &a else {
            unreachable!()
        };
        // What the snapshot stores decodes to our configuration, so merging it cannot fail.
        let decoded = DDSketch::from_java_bytes(bytes).unwrap();
        assert!(new_sketch().merge(&decoded).is_ok());
        let mut acc = new_sketch();
        a.merge_into(&mut acc);
        assert_eq!(acc.count(), 100);
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(quantile(&acc, q), quantile(&live, q));
        }
        // A frozen window is much smaller than a live one.
        assert!(a.bytes() < 400, "{} bytes", a.bytes());
        let mut live = Sketch::with(1.0);
        (0..SMALL_VALUES).for_each(|i| live.add(i as f64));
        assert!(live.is_live() && live.bytes() > 1000);
    }

    #[test]
    fn a_small_window_answers_as_a_sketch_of_its_values() {
        let values = [
            3.5, -2.0, 0.0, 1e-12, 7.25, 3.5, -40.0, 1e6, 0.01, 2.0, 2.0, -0.5,
        ];
        let mut direct = new_sketch();
        let mut s = Sketch::with(values[0]);
        direct.add(values[0]);
        for &v in &values[1..] {
            s.add(v);
            direct.add(v);
        }
        assert_eq!(s.values(), Some(&values[..]));
        s.freeze();
        assert!(
            matches!(s, Sketch::Small(_)),
            "small windows are not encoded"
        );
        assert!(s.bytes() <= SMALL_VALUES * 8);
        // A window of one value holds it inline.
        let one = Sketch::with(-3.0);
        assert_eq!((one.values(), one.bytes()), (Some(&[-3.0][..]), 0));
        let mut d = new_sketch();
        d.add(-3.0);
        assert_eq!(quantile(&one.thawed(), 0.5), quantile(&d, 0.5));
        let mut merged = new_sketch();
        merged.add(5.0);
        s.merge_into(&mut merged);
        let mut expected = direct.clone();
        expected.add(5.0);
        for q in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            assert_eq!(quantile(&s.thawed(), q), quantile(&direct, q), "q {q}");
            assert_eq!(quantile(&merged, q), quantile(&expected, q), "q {q}");
        }
        // One past the limit, it becomes a live sketch of every value.
        let mut s = Sketch::with(0.0);
        (1..=SMALL_VALUES).for_each(|i| s.add(i as f64));
        assert!(s.is_live());
        assert_eq!(s.thawed().count(), SMALL_VALUES + 1);
    }

    #[test]
    fn garbage_reads_as_an_empty_sketch_not_a_panic() {
        let s = Sketch::Frozen(vec![0xff, 0x00, 0x13].into_boxed_slice());
        assert_eq!(s.thawed().count(), 0);
    }
}
