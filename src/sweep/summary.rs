//! A sweep's models grouped by configuration (K, learning rate, hidden
//! sizes) over their seeds: how good each configuration is on average,
//! how much it moves from seed to seed, and which one to pick.
//!
//! The ranked table answers "which model?"; a user asking "which K?" wants
//! the answer that does not hang on one lucky seed. The pick follows the
//! one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani &
//! Friedman, *Elements of Statistical Learning*, §7.10): the simplest
//! configuration whose mean validation NLL is within one standard error of
//! the best mean, since a larger mixture that is no better than noise
//! usually buys dead components, not a better density.

use super::{SweepResult, hidden_text};

/// One configuration's validation NLL over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigSummary {
    pub k: usize,
    pub lr: f64,
    pub hidden: Vec<usize>,
    /// Models of this configuration in the results (one per seed).
    pub seeds: usize,
    pub mean_val_nll: f64,
    /// Sample standard deviation over the seeds (0 with one seed).
    pub sd_val_nll: f64,
    pub best_val_nll: f64,
    /// Dead components, averaged over the seeds.
    pub mean_dead: f64,
}

impl ConfigSummary {
    /// The standard error of the mean.
    pub fn standard_error(&self) -> f64 {
        self.sd_val_nll / (self.seeds as f64).sqrt()
    }

    /// Simpler first: fewer components, then fewer hidden units. The
    /// learning rate is not a complexity, so it does not order.
    fn complexity(&self) -> (usize, usize) {
        (self.k, self.hidden.iter().sum())
    }

    pub fn label(&self) -> String {
        format!(
            "k {}, lr {}, hidden {}",
            self.k,
            self.lr,
            hidden_text(&self.hidden)
        )
    }
}

/// The results grouped by configuration, best mean first (ties: simpler
/// first, then by learning rate, so every run and merge lists the same).
pub fn by_configuration(results: &[SweepResult]) -> Vec<ConfigSummary> {
    let mut groups: Vec<(usize, f64, Vec<usize>, Vec<&SweepResult>)> = Vec::new();
    for r in results {
        match groups
            .iter_mut()
            .find(|(k, lr, hidden, _)| *k == r.k && *lr == r.lr && *hidden == r.hidden)
        {
            Some(group) => group.3.push(r),
            None => groups.push((r.k, r.lr, r.hidden.clone(), vec![r])),
        }
    }
    let mut summaries: Vec<ConfigSummary> = groups
        .into_iter()
        .map(|(k, lr, hidden, members)| {
            let n = members.len() as f64;
            let mean = members.iter().map(|r| r.val_nll).sum::<f64>() / n;
            let sd = if members.len() > 1 {
                let ss: f64 = members.iter().map(|r| (r.val_nll - mean).powi(2)).sum();
                (ss / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            ConfigSummary {
                k,
                lr,
                hidden,
                seeds: members.len(),
                mean_val_nll: mean,
                sd_val_nll: sd,
                best_val_nll: members
                    .iter()
                    .map(|r| r.val_nll)
                    .fold(f64::INFINITY, f64::min),
                mean_dead: members
                    .iter()
                    .map(|r| r.dead_components.len() as f64)
                    .sum::<f64>()
                    / n,
            }
        })
        .collect();
    summaries.sort_by(|a, b| {
        a.mean_val_nll
            .total_cmp(&b.mean_val_nll)
            .then(a.complexity().cmp(&b.complexity()))
            .then(a.lr.total_cmp(&b.lr))
            .then(a.hidden.cmp(&b.hidden))
    });
    summaries
}

/// The one-standard-error pick among `summaries` (best mean first, as
/// [`by_configuration`] returns them): the simplest configuration whose
/// mean is at most the best mean plus the best configuration's standard
/// error; among equally simple ones, the lower mean. `None` when the best
/// configuration has a single seed, where there is no error to go by, or
/// when its mean is not finite.
pub fn one_standard_error_pick(summaries: &[ConfigSummary]) -> Option<&ConfigSummary> {
    let best = summaries.first()?;
    if best.seeds < 2 || !best.mean_val_nll.is_finite() {
        return None;
    }
    let limit = best.mean_val_nll + best.standard_error();
    summaries
        .iter()
        .filter(|s| s.mean_val_nll <= limit)
        .min_by(|a, b| {
            a.complexity()
                .cmp(&b.complexity())
                .then(a.mean_val_nll.total_cmp(&b.mean_val_nll))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(k: usize, seed: u64, val_nll: f64) -> SweepResult {
        SweepResult {
            k,
            seed,
            lr: 0.005,
            hidden: vec![32, 32],
            val_nll,
            train_nll: val_nll,
            steps: 100,
            dead_components: if k > 5 { vec![0] } else { vec![] },
            seconds: 1.0,
            interrupted: false,
        }
    }

    #[test]
    fn configurations_average_their_seeds_best_mean_first() {
        let results = [
            result(8, 0, -1.10),
            result(3, 0, -1.00),
            result(8, 1, -1.20),
            result(3, 1, -1.04),
            result(1, 0, -0.60),
        ];
        let s = by_configuration(&results);
        let ks: Vec<usize> = s.iter().map(|c| c.k).collect();
        assert_eq!(ks, [8, 3, 1]);
        assert_eq!(s[0].seeds, 2);
        assert!((s[0].mean_val_nll + 1.15).abs() < 1e-12);
        // Sample sd of {-1.1, -1.2}: 0.05·√2.
        assert!((s[0].sd_val_nll - 0.05 * 2f64.sqrt()).abs() < 1e-12);
        assert!((s[0].standard_error() - 0.05).abs() < 1e-12);
        assert_eq!(s[0].best_val_nll, -1.20);
        assert_eq!(s[0].mean_dead, 1.0);
        assert_eq!(s[2].sd_val_nll, 0.0);
    }

    #[test]
    fn the_pick_is_the_simplest_within_one_standard_error_of_the_best() {
        // K 8: mean -1.15, se 0.05, so the limit is -1.10. K 5 (mean
        // -1.12) is inside it and simpler; K 3 (mean -1.02) is not.
        let results = [
            result(8, 0, -1.10),
            result(8, 1, -1.20),
            result(5, 0, -1.11),
            result(5, 1, -1.13),
            result(3, 0, -1.00),
            result(3, 1, -1.04),
        ];
        let s = by_configuration(&results);
        assert_eq!(s[0].k, 8);
        assert_eq!(one_standard_error_pick(&s).unwrap().k, 5);

        // With a tight best, nothing else is within reach: the best stays.
        let tight = [
            result(8, 0, -1.150),
            result(8, 1, -1.151),
            result(5, 0, -1.11),
            result(5, 1, -1.13),
        ];
        assert_eq!(
            one_standard_error_pick(&by_configuration(&tight))
                .unwrap()
                .k,
            8
        );
    }

    #[test]
    fn one_seed_gives_no_pick() {
        let s = by_configuration(&[result(8, 0, -1.1), result(3, 0, -1.0)]);
        assert!(one_standard_error_pick(&s).is_none());
        assert!(one_standard_error_pick(&[]).is_none());
    }
}
