//! A network inside a wider one of the same depth that computes the same
//! function, so models of different K or hidden widths can train in one
//! GPU trainer (`mdn sweep`: one fused step for all of them, instead of a
//! trainer, and its dispatches, per shape).
//!
//! A padded hidden unit has zero weights in and out and a zero bias: its
//! activation is tanh(0) = 0, every product it enters adds exact zeros, and
//! every gradient it receives is 0 · something = 0, so Adam never moves
//! it. The head's unused outputs are the head kind's business
//! ([`crate::head::HeadDef::padding`]): a mixture's unused components get a
//! logit whose π is 0. Training the padded network therefore trains the
//! original one, up to the rounding of sums cut into other blocks.

use super::spec::{Head, ModelSpec};
use crate::error::{MdnError, Result};

/// The smallest network that every spec in `specs` fits inside: the same
/// inputs, targets, depth and head kind, the widest of each hidden layer and
/// the largest K. Errs, saying why, where they differ in anything else.
pub fn enclosing_spec(specs: &[&ModelSpec]) -> Result<ModelSpec> {
    let first = specs
        .first()
        .ok_or_else(|| MdnError::Config("no network to pad".into()))?;
    let mut hidden = first.hidden.clone();
    let mut k = first.k();
    for s in &specs[1..] {
        if (s.in_dim, s.out_dim, s.hidden.len(), s.head_kind())
            != (
                first.in_dim,
                first.out_dim,
                first.hidden.len(),
                first.head_kind(),
            )
        {
            return Err(MdnError::Config(format!(
                "networks of different inputs, targets, depth or head do not pad into one \
                 ({} hidden layers vs {})",
                first.hidden.len(),
                s.hidden.len()
            )));
        }
        for (w, &v) in hidden.iter_mut().zip(&s.hidden) {
            *w = (*w).max(v);
        }
        k = k.max(s.k());
    }
    let head = match first.head {
        Head::Mixture { covariance, .. } => Head::Mixture { k, covariance },
        other => other,
    };
    ModelSpec::new(first.in_dim, first.out_dim, hidden, head)
}

/// Where each parameter of `small` lives in the padded network `big`, and
/// what `big`'s parameters that `small` has no counterpart for are fixed at.
#[derive(Clone, Debug)]
pub struct Padding {
    /// Parameter `i` of the small network is parameter `to[i]` of the big.
    to: Vec<usize>,
    /// The big network's parameters that are not zero but belong to no
    /// small parameter (the head's unused biases).
    fixed: Vec<(usize, f32)>,
    big_len: usize,
}

impl Padding {
    /// How `small` pads into `big` (from [`enclosing_spec`], or any spec at
    /// least as wide everywhere with the same depth and head kind).
    pub fn new(small: &ModelSpec, big: &ModelSpec) -> Result<Self> {
        let refuse = |why: &str| {
            Err(MdnError::Config(format!(
                "cannot pad {} hidden {:?} K {} into hidden {:?} K {}: {why}",
                small.head_def().stem(),
                small.hidden,
                small.k(),
                big.hidden,
                big.k()
            )))
        };
        if (
            small.in_dim,
            small.out_dim,
            small.hidden.len(),
            small.head_kind(),
        ) != (big.in_dim, big.out_dim, big.hidden.len(), big.head_kind())
        {
            return refuse("inputs, targets, depth or head differ");
        }
        if small.hidden.iter().zip(&big.hidden).any(|(s, b)| s > b) {
            return refuse("a hidden layer is narrower in the padded network");
        }
        if small == big {
            // Any head kind is its own padding.
            let len = small.layout().len;
            return Ok(Padding {
                to: (0..len).collect(),
                fixed: Vec::new(),
                big_len: len,
            });
        }
        let Some(head) = small.head_def().padding(small.k(), big.k(), small.out_dim) else {
            return refuse("the head kind does not pad");
        };
        let (sl, bl) = (small.layout(), big.layout());
        let last = sl.layers.len() - 1;
        let mut to = vec![0; sl.len];
        for (l, (s, b)) in sl.layers.iter().zip(&bl.layers).enumerate() {
            // Hidden units keep their index (the padding comes after them);
            // the head's outputs go where the head kind says.
            let row = |o: usize| if l == last { head.rows[o] } else { o };
            for o in 0..s.out_dim {
                for i in 0..s.in_dim {
                    to[s.weight + o * s.in_dim + i] = b.weight + row(o) * b.in_dim + i;
                }
                to[s.bias + o] = b.bias + row(o);
            }
        }
        let head_bias = bl.layers[last].bias;
        Ok(Padding {
            to,
            fixed: head
                .unused_bias
                .iter()
                .filter(|(_, v)| *v != 0.0)
                .map(|&(o, v)| (head_bias + o, v))
                .collect(),
            big_len: bl.len,
        })
    }

    /// The big network's parameters for the small network's `params`.
    pub fn embed(&self, params: &[f32]) -> Vec<f32> {
        assert_eq!(
            params.len(),
            self.to.len(),
            "the small network's parameters"
        );
        let mut big = vec![0.0; self.big_len];
        for (&i, &v) in self.to.iter().zip(params) {
            big[i] = v;
        }
        for &(i, v) in &self.fixed {
            big[i] = v;
        }
        big
    }

    /// The small network's parameters out of the big network's.
    pub fn extract(&self, big: &[f32]) -> Vec<f32> {
        assert_eq!(big.len(), self.big_len, "the padded network's parameters");
        self.to.iter().map(|&i| big[i]).collect()
    }

    /// Whether the big network is the small one (nothing padded).
    pub fn is_identity(&self) -> bool {
        self.big_len == self.to.len() && self.fixed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuTrainer;
    use crate::data::toy::{ToyProblem, toy_dataset};
    use crate::model::Covariance;
    use crate::model::init::init_params;
    use crate::train::{LrSchedule, TrainConfig, Trainer};

    fn mixture(hidden: Vec<usize>, k: usize, d: usize) -> ModelSpec {
        ModelSpec::new(
            2,
            d,
            hidden,
            Head::Mixture {
                k,
                covariance: Covariance::Diag,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_enclosing_network_is_the_widest_of_each_and_refuses_other_depths() {
        let (a, b) = (mixture(vec![8, 16], 3, 2), mixture(vec![12, 4], 1, 2));
        let big = enclosing_spec(&[&a, &b]).unwrap();
        assert_eq!((big.hidden.clone(), big.k()), (vec![12, 16], 3));
        assert!(enclosing_spec(&[&a, &mixture(vec![8], 3, 2)]).is_err());
        assert!(enclosing_spec(&[&a, &mixture(vec![8, 16], 3, 1)]).is_err());
        assert!(Padding::new(&big, &a).is_err(), "wider into narrower");
        assert!(Padding::new(&a, &a).unwrap().is_identity());
        let full = ModelSpec::new(2, 2, vec![8], Head::full_mixture(2)).unwrap();
        assert!(Padding::new(&full, &full).unwrap().is_identity());
        let wider = ModelSpec {
            hidden: vec![9],
            ..full.clone()
        };
        assert!(
            Padding::new(&full, &wider).is_err(),
            "the full head does not pad"
        );
        assert!(!Padding::new(&b, &big).unwrap().is_identity());
    }

    #[test]
    fn embedding_then_extracting_gives_the_parameters_back() {
        let (small, big) = (mixture(vec![5, 3], 2, 3), mixture(vec![9, 7], 6, 3));
        let pad = Padding::new(&small, &big).unwrap();
        let p = init_params(&small, 4);
        let p: Vec<f32> = p.iter().enumerate().map(|(i, v)| v + i as f32).collect();
        let e = pad.embed(&p);
        assert_eq!(pad.extract(&e), p);
        // Every small parameter has its own place.
        let mut seen = vec![false; e.len()];
        for &i in &pad.to {
            assert!(!std::mem::replace(&mut seen[i], true), "{i} taken twice");
        }
    }

    /// The padded network's loss and its training are the small network's:
    /// the same NLL on data, and the same parameters after 300 Adam steps
    /// (the padding itself stays where it was).
    #[test]
    fn the_padded_network_trains_as_the_small_one() {
        let data = toy_dataset(ToyProblem::Inverse, 300, 3);
        for (small, big) in [
            (
                ModelSpec::mixture(1, 1, vec![6, 5], 2).unwrap(),
                ModelSpec::mixture(1, 1, vec![11, 8], 5).unwrap(),
            ),
            (
                ModelSpec::mixture(1, 1, vec![7], 3).unwrap(),
                ModelSpec::mixture(1, 1, vec![7], 3).unwrap(),
            ),
            (
                ModelSpec::mlp(1, 1, vec![4]).unwrap(),
                ModelSpec::mlp(1, 1, vec![9]).unwrap(),
            ),
        ] {
            let pad = Padding::new(&small, &big).unwrap();
            let config = TrainConfig {
                steps: 300,
                batch: 64,
                lr: 1e-2,
                schedule: LrSchedule::Cosine,
                seed: 5,
            };
            let p0 = init_params(&small, 9);
            let mut a = CpuTrainer::new(&small, &data, p0.clone(), &config).unwrap();
            let mut b = CpuTrainer::new(&big, &data, pad.embed(&p0), &config).unwrap();
            a.run(config.steps).unwrap();
            b.run(config.steps).unwrap();
            let (la, lb) = (a.take_loss().unwrap(), b.take_loss().unwrap());
            assert!(
                (la.mean() - lb.mean()).abs() <= 1e-6 * la.mean().abs().max(1.0),
                "{small:?}: loss {} vs {}",
                la.mean(),
                lb.mean()
            );
            let (pa, pb) = (a.params().unwrap(), b.params().unwrap());
            let got = pad.extract(&pb);
            let worst = pa
                .iter()
                .zip(&got)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-5,
                "{:?} → {:?}: {worst:e}",
                small.hidden,
                big.hidden
            );
            // The padding did not move: re-embedding the result gives back
            // the padded vector.
            assert_eq!(pad.embed(&got), pb, "{:?}", big.hidden);
        }
    }
}
