//! Where a data set comes from, written down so a run can read it again
//! (`train --resume` takes it from the checkpoint): a data file with its
//! column choice, or the toy problem with its size and seed. And the
//! validation set: a seeded share of the training rows, or a file.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Dataset;
use super::csv::{ColumnChoice, load_dataset};
use super::toy::{ToyProblem, toy_dataset};
use crate::error::{MdnError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// A data file in any format `load_dataset` reads (CSV, Parquet, NPY);
    /// named `csv` in checkpoints since before the other formats, and kept
    /// so, so every checkpoint still loads.
    Csv {
        path: PathBuf,
        input: Option<Vec<String>>,
        target: Option<Vec<String>>,
    },
    Toy {
        problem: ToyProblem,
        n: usize,
        seed: u64,
    },
}

/// Seed offset of the toy validation set, so it never equals the training
/// or the test set.
const TOY_VAL_SEED: u64 = 0x0000_7a1d_a7e5;

impl DataSource {
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSource::Csv {
                path,
                input,
                target,
            } => load_dataset(
                path,
                &ColumnChoice {
                    input: input.clone(),
                    target: target.clone(),
                },
            ),
            DataSource::Toy { problem, n, seed } => Ok(toy_dataset(*problem, *n, *seed)),
        }
    }
}

/// `train --val FRAC|F.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValSource {
    /// A seeded random share of the training rows (of the toy problem:
    /// fresh rows, that many more).
    Fraction(f64),
    File(PathBuf),
}

impl ValSource {
    /// Parses `--val`: a number in (0, 1) or a file's path.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(ValSource::Fraction(f)),
            Ok(f) => Err(MdnError::Config(format!(
                "--val takes a share of the rows strictly between 0 and 1, or a file; got {f}"
            ))),
            Err(_) => Ok(ValSource::File(PathBuf::from(text))),
        }
    }

    /// Splits `data` (from `source`) into training and validation rows.
    /// A fraction of a CSV takes a seeded random `frac` of the rows (at
    /// least one, and at least one left to train on); of the toy problem,
    /// fresh rows of the same problem, so nothing is taken from training.
    /// A file is read with the training data's column names.
    pub fn split(
        &self,
        source: &DataSource,
        data: Dataset,
        seed: u64,
    ) -> Result<(Dataset, Dataset)> {
        match (self, source) {
            (ValSource::Fraction(f), DataSource::Toy { problem, n, seed }) => {
                let rows = ((*n as f64 * f).round() as usize).max(1);
                let val = toy_dataset(*problem, rows, seed.wrapping_add(TOY_VAL_SEED));
                Ok((data, val))
            }
            (ValSource::Fraction(f), DataSource::Csv { .. }) => split_rows(data, *f, seed),
            (ValSource::File(path), _) => {
                let cols = ColumnChoice {
                    input: Some(data.input_names.clone()),
                    target: Some(data.target_names.clone()),
                };
                let val = load_dataset(path, &cols)?;
                Ok((data, val))
            }
        }
    }
}

/// A seeded random `frac` of the rows as the second set, the rest (in
/// their original order) as the first.
fn split_rows(data: Dataset, frac: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    let n = data.len();
    let take = (n as f64 * frac).round() as usize;
    if n < 2 || take == 0 || take >= n {
        return Err(MdnError::Data(format!(
            "--val {frac} of {n} rows leaves no validation or no training rows; give a file or train without --val"
        )));
    }
    // u32 indices: half the memory of usize ones at 10⁸ rows, and the same
    // shuffle (the swaps drawn depend on the length only).
    let last = u32::try_from(n - 1)
        .map_err(|_| MdnError::Data(format!("{n} rows are too many to split for --val")))?;
    let mut order: Vec<u32> = (0..=last).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0fa1));
    let mut is_val = vec![false; n];
    for &i in &order[..take] {
        is_val[i as usize] = true;
    }
    drop(order);
    // The training rows move down in place; only the validation rows are
    // copied out, so the data is never held twice.
    let Dataset {
        mut inputs,
        mut targets,
        in_dim,
        out_dim,
        input_names,
        target_names,
    } = data;
    let (mut val_in, mut val_out) = (
        Vec::with_capacity(take * in_dim),
        Vec::with_capacity(take * out_dim),
    );
    let mut kept = 0;
    for (i, &v) in is_val.iter().enumerate() {
        let (x, y) = (i * in_dim..(i + 1) * in_dim, i * out_dim..(i + 1) * out_dim);
        if v {
            val_in.extend_from_slice(&inputs[x]);
            val_out.extend_from_slice(&targets[y]);
        } else {
            inputs.copy_within(x, kept * in_dim);
            targets.copy_within(y, kept * out_dim);
            kept += 1;
        }
    }
    inputs.truncate(kept * in_dim);
    targets.truncate(kept * out_dim);
    inputs.shrink_to_fit();
    targets.shrink_to_fit();
    let val = Dataset::new(val_in, val_out, input_names.clone(), target_names.clone())?;
    let train = Dataset::new(inputs, targets, input_names, target_names)?;
    Ok((train, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_splits_every_row_once_and_is_seeded() {
        let src = DataSource::Toy {
            problem: ToyProblem::Forward,
            n: 100,
            seed: 1,
        };
        let data = src.load().unwrap();
        let (train, val) = split_rows(data.clone(), 0.2, 7).unwrap();
        assert_eq!((train.len(), val.len()), (80, 20));
        let mut all: Vec<f32> = train.inputs.iter().chain(&val.inputs).copied().collect();
        let mut want = data.inputs.clone();
        all.sort_by(f32::total_cmp);
        want.sort_by(f32::total_cmp);
        assert_eq!(all, want);
        assert_eq!(split_rows(data.clone(), 0.2, 7).unwrap().1, val);
        assert_ne!(split_rows(data.clone(), 0.2, 8).unwrap().1, val);
        assert!(split_rows(data, 0.001, 7).is_err());
        assert!(ValSource::parse("1.5").is_err());
        assert_eq!(ValSource::parse("0.1").unwrap(), ValSource::Fraction(0.1));
        assert_eq!(
            ValSource::parse("v.csv").unwrap(),
            ValSource::File("v.csv".into())
        );
        // The toy problem's validation rows are fresh ones.
        let (t, v) = ValSource::Fraction(0.1)
            .split(&src, src.load().unwrap(), 0)
            .unwrap();
        assert_eq!((t.len(), v.len()), (100, 10));
    }
}
