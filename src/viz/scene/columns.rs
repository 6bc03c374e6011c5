//! The data scene on data of several input or target columns: which two
//! columns are plotted, and which of the data's rows the sampler draws
//! from. Device-free, so the rules are tested without an adapter.

use crate::data::Dataset;
use crate::error::{MdnError, Result};

/// The data's columns the plot shows: an input column on the x axis and a
/// target column on the y axis, as indices into the data's input and
/// target names. The default is the first of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlotColumns {
    pub input: usize,
    pub target: usize,
}

impl PlotColumns {
    /// The columns called `input` and `target` (`None`: the first), which
    /// must be among the data's inputs and targets.
    pub fn named(data: &Dataset, input: Option<&str>, target: Option<&str>) -> Result<Self> {
        let find = |names: &[String], want: Option<&str>, what: &str| match want {
            None => Ok(0),
            Some(w) => names.iter().position(|n| n == w).ok_or_else(|| {
                MdnError::Config(format!(
                    "cannot plot `{w}`: it is not one of the {what} columns ({})",
                    names.join(", ")
                ))
            }),
        };
        Ok(PlotColumns {
            input: find(&data.input_names, input, "input")?,
            target: find(&data.target_names, target, "target")?,
        })
    }

    /// Checks the indices against `data`'s columns.
    pub fn check(&self, data: &Dataset) -> Result<()> {
        if self.input >= data.in_dim || self.target >= data.out_dim {
            return Err(MdnError::Config(format!(
                "plotted columns #{} and #{} are out of range: the data has {} input and {} target columns",
                self.input, self.target, data.in_dim, data.out_dim
            )));
        }
        Ok(())
    }

    /// Row `r`'s plotted (input, target).
    pub fn point(&self, data: &Dataset, r: usize) -> (f32, f32) {
        (
            data.inputs[r * data.in_dim + self.input],
            data.targets[r * data.out_dim + self.target],
        )
    }

    /// The plotted input of every row.
    pub fn xs<'a>(&self, data: &'a Dataset) -> impl Iterator<Item = f32> + 'a {
        let (d, c) = (data.in_dim, self.input);
        data.inputs.iter().skip(c).step_by(d).copied()
    }

    /// The plotted target of every row.
    pub fn ys<'a>(&self, data: &'a Dataset) -> impl Iterator<Item = f32> + 'a {
        let (d, c) = (data.out_dim, self.target);
        data.targets.iter().skip(c).step_by(d).copied()
    }
}

/// Rows a conditioned sampling pass runs the network on at most: its
/// forward pass holds `rows × widest layer` floats in one binding.
pub const MAX_CONDITIONED_ROWS: usize = 65_536;

/// The data rows `samples` conditioned draws come from, and the draws per
/// row: every row when there are fewer rows than samples (several draws
/// each, so the total is at least `samples`), else `samples` rows spread
/// evenly over the data, one draw each (never more than
/// [`MAX_CONDITIONED_ROWS`] rows).
pub fn conditioned_rows(data_rows: usize, samples: usize) -> (Vec<usize>, usize) {
    let samples = samples.max(1);
    let rows = data_rows.min(samples).min(MAX_CONDITIONED_ROWS);
    if rows == 0 {
        return (Vec::new(), 0);
    }
    let per_row = samples.div_ceil(rows);
    let picked = (0..rows).map(|i| i * data_rows / rows).collect();
    (picked, per_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide() -> Dataset {
        // Two rows of inputs (a, b) and targets (c, d).
        Dataset::new(
            vec![1.0, 2.0, 3.0, 4.0],
            vec![5.0, 6.0, 7.0, 8.0],
            vec!["a".into(), "b".into()],
            vec!["c".into(), "d".into()],
        )
        .unwrap()
    }

    #[test]
    fn named_columns_pick_the_plotted_values() {
        let d = wide();
        let p = PlotColumns::named(&d, Some("b"), Some("d")).unwrap();
        assert_eq!(
            p,
            PlotColumns {
                input: 1,
                target: 1
            }
        );
        assert_eq!(p.point(&d, 1), (4.0, 8.0));
        assert_eq!(p.xs(&d).collect::<Vec<_>>(), [2.0, 4.0]);
        assert_eq!(p.ys(&d).collect::<Vec<_>>(), [6.0, 8.0]);
        let first = PlotColumns::named(&d, None, None).unwrap();
        assert_eq!(first, PlotColumns::default());
        assert_eq!(first.xs(&d).collect::<Vec<_>>(), [1.0, 3.0]);
        assert!(first.check(&d).is_ok());
        assert!(
            PlotColumns {
                input: 2,
                target: 0
            }
            .check(&d)
            .is_err()
        );
    }

    #[test]
    fn unknown_columns_are_named_in_the_error() {
        let d = wide();
        let err = PlotColumns::named(&d, Some("z"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`z`") && err.contains("a, b"), "{err}");
        let err = PlotColumns::named(&d, None, Some("a"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("target columns (c, d)"), "{err}");
    }

    #[test]
    fn conditioned_rows_cover_the_data_or_spread_over_it() {
        // Fewer rows than samples: every row, several draws each.
        let (rows, per) = conditioned_rows(300, 1000);
        assert_eq!(rows, (0..300).collect::<Vec<_>>());
        assert_eq!(per, 4);
        // More rows than samples: an even spread, one draw each.
        let (rows, per) = conditioned_rows(10_000, 1000);
        assert_eq!((rows.len(), per), (1000, 1));
        assert_eq!((rows[0], rows[1], rows[999]), (0, 10, 9990));
        // Bounded forward pass.
        let (rows, per) = conditioned_rows(1_000_000, 1_000_000);
        assert_eq!(rows.len(), MAX_CONDITIONED_ROWS);
        assert!(rows.len() * per >= 1_000_000);
        assert_eq!(conditioned_rows(0, 10), (Vec::new(), 0));
    }
}
