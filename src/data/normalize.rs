//! Per-column z-scoring with training-set statistics (DESIGN.md §1).

use rayon::prelude::*;

use crate::error::{MdnError, Result};

/// Rows per task of the parallel in-place pass.
const PAR_ROWS: usize = 1 << 16;

#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Column statistics of a row-major `[rows, dim]` matrix, in f64 so large
    /// datasets do not lose precision. A constant column gets std 1 so it
    /// maps to 0 instead of dividing by zero.
    pub fn fit(values: &[f32], dim: usize) -> Result<Self> {
        let rows = values.len() / dim.max(1);
        if rows == 0 {
            return Err(MdnError::Data("cannot normalise an empty dataset".into()));
        }
        let mut mean = vec![0.0f64; dim];
        for row in values.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0.0f64; dim];
        for row in values.chunks_exact(dim) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / rows as f64).sqrt();
                if sd > 1e-12 && sd.is_finite() {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Normalizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    pub fn identity(dim: usize) -> Self {
        Normalizer {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        let d = self.dim();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - self.mean[i % d]) / self.std[i % d])
            .collect()
    }

    /// [`Normalizer::apply`] over `values` itself, on every core: the same
    /// arithmetic, so the same bits, without a second buffer the size of
    /// the data.
    pub fn apply_in_place(&self, values: &mut [f32]) {
        let d = self.dim();
        values.par_chunks_mut(PAR_ROWS * d).for_each(|block| {
            for row in block.chunks_exact_mut(d) {
                for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                    *v = (*v - m) / s;
                }
            }
        });
    }

    pub fn invert(&self, values: &[f32]) -> Vec<f32> {
        let d = self.dim();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| v * self.std[i % d] + self.mean[i % d])
            .collect()
    }

    /// Σ_d log std_d: added to a z-scored NLL it gives the NLL in original
    /// units (the change-of-variables Jacobian).
    pub fn log_det(&self) -> f64 {
        self.std.iter().map(|&s| (s as f64).ln()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_constant_columns() {
        let v = vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let n = Normalizer::fit(&v, 2).unwrap();
        assert_eq!(n.std[1], 1.0);
        let z = n.apply(&v);
        assert!((z[0] + z[2] + z[4]).abs() < 1e-6);
        let back = n.invert(&z);
        for (a, b) in v.iter().zip(back) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(Normalizer::fit(&[], 1).is_err());
    }

    #[test]
    fn in_place_gives_the_same_bits_as_apply() {
        let v: Vec<f32> = (0..3 * 70_001)
            .map(|i| (i as f32 * 0.37).sin() * 1e3 + 7.0)
            .collect();
        let n = Normalizer::fit(&v, 3).unwrap();
        let mut w = v.clone();
        n.apply_in_place(&mut w);
        let z = n.apply(&v);
        assert!(z.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
