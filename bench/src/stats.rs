//! Order statistics over a benchmark's samples: median, min, p90 (and max).
//!
//! Owns only arithmetic on numbers already measured; it never times anything itself.

use serde::Serialize;

/// The summary of one measured quantity (all in the samples' unit, e.g. milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    /// 90th percentile, nearest-rank: the smallest sample with at least 90 % of samples at or below it.
    pub p90: f64,
    pub max: f64,
    /// The samples in the order they were measured.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarises `samples`; `None` if there are none (or one is NaN).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            p90: sorted[nearest_rank(n, 90)],
            max: sorted[n - 1],
            samples: samples.to_vec(),
        })
    }
}

/// The 0-based index of the `percent`th percentile of `n` sorted samples, nearest-rank method
/// (rank = ceil(percent/100 * n)). `n` must be at least 1.
fn nearest_rank(n: usize, percent: usize) -> usize {
    (percent * n).div_ceil(100).clamp(1, n) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let s = Summary::of(&[7.5]).unwrap();
        assert_eq!((s.median, s.min, s.p90, s.max), (7.5, 7.5, 7.5, 7.5));
    }

    #[test]
    fn odd_count_median_is_the_middle_sample() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(
            s.samples,
            vec![5.0, 1.0, 3.0],
            "samples keep measurement order"
        );
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_two() {
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
    }

    #[test]
    fn p90_is_nearest_rank() {
        // 1..=20: rank ceil(0.9 * 20) = 18 -> 18.0.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Summary::of(&twenty).unwrap().p90, 18.0);
        // 1..=10: rank 9.
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(Summary::of(&ten).unwrap().p90, 9.0);
        // 1..=21: rank ceil(18.9) = 19.
        let twenty_one: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(Summary::of(&twenty_one).unwrap().p90, 19.0);
        // Two samples: rank ceil(1.8) = 2 -> the larger.
        assert_eq!(Summary::of(&[2.0, 1.0]).unwrap().p90, 2.0);
    }

    #[test]
    fn nearest_rank_stays_in_bounds() {
        for n in 1..200 {
            for p in [0, 1, 50, 90, 99, 100] {
                assert!(nearest_rank(n, p) < n);
            }
        }
    }
}
