//! The search itself, apart from any device: coordinate descent over
//! [`Knob`]s with a measuring function, so its rules are tested on rates
//! made up for the purpose.
//!
//! Each knob in turn tries every value on top of the best configuration so
//! far; a value takes over only when its rate beats the best's by the
//! margin, so noise does not walk the search away from a setting that is
//! as good. A configuration met twice is measured once.

use super::space::Knob;
use crate::error::Result;
use crate::gpu::config::KernelConfig;

/// What measuring one configuration gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Steps per second (every model's step counted once).
    Rate(f64),
    /// Not measured, and why: the device refuses the sizes, or the trainer
    /// would not run the path the configuration asks for.
    Skipped(String),
}

impl Outcome {
    pub fn rate(&self) -> Option<f64> {
        match self {
            Outcome::Rate(r) => Some(*r),
            Outcome::Skipped(_) => None,
        }
    }
}

/// One measured (or skipped) configuration, as the search met it.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// The knob that was being tried (`start` for a path's first
    /// configuration, `confirm` for the last comparison).
    pub knob: String,
    pub config: KernelConfig,
    pub outcome: Outcome,
    /// Whether it became the best so far.
    pub kept: bool,
}

/// Measures configurations, remembering each, and reports every trial.
pub struct Searcher<'a> {
    measure: &'a mut dyn FnMut(&KernelConfig) -> Result<Outcome>,
    on_trial: &'a mut dyn FnMut(&Trial),
    seen: Vec<(KernelConfig, Outcome)>,
    /// Relative gain a value needs over the best to take over (0.03: 3 %).
    pub margin: f64,
}

impl<'a> Searcher<'a> {
    pub fn new(
        margin: f64,
        measure: &'a mut dyn FnMut(&KernelConfig) -> Result<Outcome>,
        on_trial: &'a mut dyn FnMut(&Trial),
    ) -> Self {
        Searcher {
            measure,
            on_trial,
            seen: Vec::new(),
            margin,
        }
    }

    /// The outcome of `config`, measured the first time it is asked for.
    pub fn outcome(&mut self, config: &KernelConfig) -> Result<Outcome> {
        if let Some((_, o)) = self.seen.iter().find(|(c, _)| c == config) {
            return Ok(o.clone());
        }
        let o = (self.measure)(config)?;
        self.seen.push((*config, o.clone()));
        Ok(o)
    }

    /// Measures `config` afresh (the final comparison repeats a
    /// measurement on purpose), reporting it as a trial of `knob`.
    pub fn remeasure(&mut self, knob: &str, config: &KernelConfig) -> Result<Outcome> {
        let o = (self.measure)(config)?;
        self.report(knob, config, &o, false);
        Ok(o)
    }

    fn report(&mut self, knob: &str, config: &KernelConfig, outcome: &Outcome, kept: bool) {
        (self.on_trial)(&Trial {
            knob: knob.to_string(),
            config: *config,
            outcome: outcome.clone(),
            kept,
        });
    }

    /// Descends from `start` over `knobs`; returns the best configuration
    /// and its rate, or `None` when `start` itself could not be measured.
    pub fn descend(
        &mut self,
        start: KernelConfig,
        knobs: &[Knob],
    ) -> Result<Option<(KernelConfig, f64)>> {
        let first = self.outcome(&start)?;
        let Some(mut best_rate) = first.rate() else {
            self.report("start", &start, &first, false);
            return Ok(None);
        };
        self.report("start", &start, &first, true);
        let mut best = start;
        for knob in knobs {
            if !(knob.applies)(&best) {
                continue;
            }
            let mut round_best: Option<(KernelConfig, f64)> = None;
            for value in &knob.values {
                let Ok(candidate) = best.with_overrides(value) else {
                    continue;
                };
                if candidate == best {
                    continue;
                }
                let o = self.outcome(&candidate)?;
                let better = o.rate().is_some_and(|r| {
                    r > best_rate * (1.0 + self.margin) && round_best.is_none_or(|(_, b)| r > b)
                });
                if better {
                    round_best = Some((candidate, o.rate().unwrap_or_default()));
                }
                self.report(knob.name, &candidate, &o, false);
            }
            if let Some((c, r)) = round_best {
                best = c;
                best_rate = r;
                self.report(knob.name, &c, &Outcome::Rate(r), true);
            }
        }
        Ok(Some((best, best_rate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made-up rates: fused_tile 2 is best, fused_rows 16 better still,
    /// fused_wg 128 only 1 % better (inside the margin), fused_tile 8
    /// refused; the per-stage path is slow.
    fn rate(c: &KernelConfig) -> Outcome {
        if c.fused_tile == 8 {
            return Outcome::Skipped("refused".into());
        }
        if !c.fused {
            return Outcome::Rate(50.0);
        }
        let mut r = 100.0;
        r *= match c.fused_tile {
            2 => 1.5,
            1 => 0.5,
            _ => 1.0,
        };
        if c.fused_rows == 16 {
            r *= 1.2;
        }
        if c.fused_wg == 128 {
            r *= 1.01;
        }
        Outcome::Rate(r)
    }

    fn knobs() -> Vec<Knob> {
        super::super::space::fused_knobs(4)
    }

    #[test]
    fn descent_finds_each_knobs_best_and_ignores_gains_inside_the_margin() {
        let calls = std::cell::Cell::new(0);
        let trials = std::cell::RefCell::new(Vec::new());
        let mut measure = |c: &KernelConfig| {
            calls.set(calls.get() + 1);
            Ok(rate(c))
        };
        let mut on_trial = |t: &Trial| trials.borrow_mut().push(t.clone());
        let mut s = Searcher::new(0.03, &mut measure, &mut on_trial);
        let start = KernelConfig::hardware();
        let (best, r) = s.descend(start, &knobs()).unwrap().unwrap();
        assert_eq!(best.fused_tile, 2);
        assert_eq!(best.fused_rows, 16);
        assert_eq!(best.fused_wg, start.fused_wg, "1 % is inside the margin");
        assert!((r - 180.0).abs() < 1e-9, "{r}");
        // Every configuration was measured once: a knob's trials, less the
        // value already in place.
        let tried: usize = knobs().iter().map(|k| k.values.len() - 1).sum();
        assert_eq!(calls.get(), 1 + tried);
        {
            let trials = trials.borrow();
            let refused = trials
                .iter()
                .filter(|t| matches!(t.outcome, Outcome::Skipped(_)))
                .count();
            assert!(refused >= 1, "fused_tile=8 is reported as skipped");
            let kept: Vec<&str> = trials
                .iter()
                .filter(|t| t.kept)
                .map(|t| t.knob.as_str())
                .collect();
            assert_eq!(kept, ["start", "fused_tile", "fused_rows"]);
        }
        // Measuring again is on purpose, and counted.
        s.remeasure("confirm", &best).unwrap();
        s.outcome(&best).unwrap();
        drop(s);
        assert_eq!(calls.get(), 2 + tried);
    }

    #[test]
    fn settings_that_change_nothing_for_the_best_are_not_timed() {
        let calls = std::cell::Cell::new(0);
        let mut measure = |_: &KernelConfig| {
            calls.set(calls.get() + 1);
            Ok(Outcome::Rate(100.0))
        };
        let mut on_trial = |_: &Trial| {};
        let mut s = Searcher::new(0.03, &mut measure, &mut on_trial);
        // The blocked matmul stays (every rate is the same): the staged
        // variants' workgroup, depth and big tiles are passed over.
        let start = KernelConfig::software();
        let knobs = super::super::space::per_stage_knobs();
        let (best, _) = s.descend(start, &knobs).unwrap().unwrap();
        assert_eq!(best, start);
        let expected: usize = knobs
            .iter()
            .filter(|k| !["wg", "k", "big_tile"].contains(&k.name))
            .map(|k| {
                k.values
                    .iter()
                    .filter(|v| start.with_overrides(v).unwrap() != start)
                    .count()
            })
            .sum();
        drop(s);
        assert_eq!(calls.get(), 1 + expected);
    }

    #[test]
    fn a_start_that_cannot_run_ends_the_path() {
        let mut measure = |_: &KernelConfig| Ok(Outcome::Skipped("no fused step".into()));
        let mut on_trial = |_: &Trial| {};
        let mut s = Searcher::new(0.03, &mut measure, &mut on_trial);
        assert_eq!(s.descend(KernelConfig::hardware(), &knobs()).unwrap(), None);
    }

    #[test]
    fn measuring_errors_stop_the_search() {
        let mut measure =
            |_: &KernelConfig| Err(crate::error::MdnError::Config("device lost".into()));
        let mut on_trial = |_: &Trial| {};
        let mut s = Searcher::new(0.03, &mut measure, &mut on_trial);
        let e = s.descend(KernelConfig::hardware(), &knobs()).unwrap_err();
        assert!(e.to_string().contains("device lost"));
    }
}
