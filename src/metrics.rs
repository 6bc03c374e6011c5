//! Distributional metrics and point summaries of 1-D Gaussian mixtures.
//!
//! Everything is computed in f64 from f32 parameters, in the data's original
//! units. Serves `eval --json` (CRPS, PIT-KS, coverage, MSE of the mean,
//! component usage) and `predict --point/--quantiles` (mean, median, mode,
//! quantiles); see DESIGN.md.

use std::f64::consts::FRAC_1_SQRT_2;

/// A component whose π averaged over the rows is below this is dead.
pub const DEAD_PI: f64 = 1e-3;

/// A component whose π exceeds this on every row dominates the mixture.
const DOMINANT_PI: f64 = 0.95;

/// Number of equal-width PIT histogram bins on [0, 1].
const PIT_BINS: usize = 20;

/// Nominal levels of the coverage curve are `i / COVERAGE_STEPS`, i = 1..STEPS-1.
const COVERAGE_STEPS: usize = 20;

const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

fn std_pdf(z: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Φ(z); erfc keeps relative accuracy deep in the lower tail.
fn std_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// A(m, s²) of Grimit et al. (2006), taking s rather than s².
/// `2Φ(z) − 1` is written as erf(z/√2) to avoid cancellation near z = 0.
fn crps_a(m: f64, s: f64) -> f64 {
    let z = m / s;
    2.0 * s * std_pdf(z) + m * libm::erf(z * FRAC_1_SQRT_2)
}

/// One row's 1-D Gaussian mixture: weights `pi`, means `mu`, std devs `sigma` (> 0),
/// all of length K, in original units.
///
/// Weights are renormalised to sum 1 inside every method, because an f32 softmax
/// rarely sums to exactly 1 and quantiles near 0 or 1 would otherwise have no root.
#[derive(Clone, Copy, Debug)]
pub struct Mix1<'a> {
    pub pi: &'a [f32],
    pub mu: &'a [f32],
    pub sigma: &'a [f32],
}

/// ln p(x) and responsibility-weighted sums at one point. Computed by
/// log-sum-exp, so far-away points neither underflow nor lose the relative
/// weights of the components.
struct LocalStats {
    /// ln p(x).
    log_p: f64,
    /// Σ r_k / σ_k² (r_k: responsibilities at x).
    s1: f64,
    /// Σ r_k μ_k / σ_k².
    s2: f64,
    /// Σ r_k (x − μ_k)² / σ_k⁴.
    s3: f64,
}

/// Live components as (ln π − ln σ, μ, 1/σ²): the logs are taken once per
/// `mode()` call rather than at every step of every climb.
struct LogComps(Vec<(f64, f64, f64)>);

impl LogComps {
    fn new(m: &Mix1) -> Self {
        Self(
            m.live()
                .map(|(p, mu, s)| (p.ln() - s.ln(), mu, 1.0 / (s * s)))
                .collect(),
        )
    }

    fn stats(&self, x: f64) -> LocalStats {
        // One pass with a running maximum: rescale the sums whenever it grows.
        let mut lmax = f64::NEG_INFINITY;
        let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
        for &(lw, mu, inv_var) in &self.0 {
            let d = x - mu;
            let l = lw - 0.5 * d * d * inv_var;
            let w = if l > lmax {
                let r = (lmax - l).exp();
                s0 *= r;
                s1 *= r;
                s2 *= r;
                s3 *= r;
                lmax = l;
                1.0
            } else {
                (l - lmax).exp()
            };
            let g = d * inv_var;
            s0 += w;
            s1 += w * inv_var;
            s2 += w * mu * inv_var;
            s3 += w * g * g;
        }
        LocalStats {
            log_p: lmax + s0.ln() - LN_SQRT_2PI,
            s1: s1 / s0,
            s2: s2 / s0,
            s3: s3 / s0,
        }
    }

    /// Climb to a local maximum of the density from `x`. Each step takes a
    /// Newton step on ln p when it raises p (quadratic near a non-degenerate
    /// maximum), else the mean-shift point, which never lowers p.
    fn climb(&self, mut x: f64, tol_sigma: f64) -> (f64, f64) {
        let mut st = self.stats(x);
        for _ in 0..500 {
            // d/dx ln p = s2 − x·s1; d²/dx² ln p = s3 − s1 − (d/dx ln p)².
            let grad = st.s2 - x * st.s1;
            let curv = st.s3 - st.s1 - grad * grad;
            let mut next = None;
            if curv < 0.0 {
                let newton = x - grad / curv;
                if newton.is_finite() {
                    let nst = self.stats(newton);
                    if nst.log_p > st.log_p {
                        next = Some((newton, nst));
                    }
                }
            }
            let (cand, cand_st) = match next {
                Some(n) => n,
                None => {
                    let shift = st.s2 / st.s1;
                    (shift, self.stats(shift))
                }
            };
            // Also stops on NaN.
            let improved = cand_st.log_p >= st.log_p;
            if !improved {
                break;
            }
            let step = (cand - x).abs();
            x = cand;
            st = cand_st;
            if step <= tol_sigma.max(4.0 * f64::EPSILON * x.abs()) {
                break;
            }
        }
        (x, st.log_p)
    }
}

impl<'a> Mix1<'a> {
    /// Components as (normalised π, μ, σ) in f64.
    fn comps(&self) -> impl Iterator<Item = (f64, f64, f64)> + use<'a> {
        debug_assert!(self.pi.len() == self.mu.len() && self.pi.len() == self.sigma.len());
        let total: f64 = self.pi.iter().map(|&p| f64::from(p)).sum();
        let inv = 1.0 / total;
        self.pi
            .iter()
            .zip(self.mu)
            .zip(self.sigma)
            .map(move |((&p, &m), &s)| (f64::from(p) * inv, f64::from(m), f64::from(s)))
    }

    /// Components that carry weight; zero-weight ones must not widen brackets
    /// or shrink tolerances.
    fn live(&self) -> impl Iterator<Item = (f64, f64, f64)> + use<'a> {
        self.comps().filter(|c| c.0 > 0.0)
    }

    fn min_sigma(&self) -> f64 {
        self.live().map(|c| c.2).fold(f64::INFINITY, f64::min)
    }

    /// Density at `t`.
    pub fn pdf(&self, t: f64) -> f64 {
        self.comps()
            .map(|(p, m, s)| p * std_pdf((t - m) / s) / s)
            .sum()
    }

    /// Cumulative distribution function at `t`, clamped to [0, 1].
    pub fn cdf(&self, t: f64) -> f64 {
        let f: f64 = self.comps().map(|(p, m, s)| p * std_cdf((t - m) / s)).sum();
        f.clamp(0.0, 1.0)
    }

    /// 1 − F(t), accurate in the upper tail where 1 − cdf(t) would cancel.
    fn sf(&self, t: f64) -> f64 {
        let f: f64 = self.comps().map(|(p, m, s)| p * std_cdf((m - t) / s)).sum();
        f.clamp(0.0, 1.0)
    }

    /// Mixture mean Σ π_k μ_k.
    pub fn mean(&self) -> f64 {
        self.comps().map(|(p, m, _)| p * m).sum()
    }

    /// Mixture variance Σ π_k (σ_k² + (μ_k − mean)²); the centred form avoids
    /// the cancellation of E[x²] − mean² when |mean| ≫ σ.
    pub fn variance(&self) -> f64 {
        let mean = self.mean();
        self.comps()
            .map(|(p, m, s)| p * (s * s + (m - mean) * (m - mean)))
            .sum()
    }

    /// The q-quantile, 0 < q < 1 (−∞ for q ≤ 0, +∞ for q ≥ 1, NaN for NaN).
    ///
    /// Safeguarded Newton on the CDF (on the survival function for q > ½, for
    /// accuracy near 1) inside the bracket [min μ − 40σ, max μ + 40σ]; stops when
    /// the bracket is narrower than 1e-10 of the smallest σ (or than the f64
    /// resolution at the root), so the error is relative to the finest scale of
    /// the mixture whatever the units.
    /// Where F is flat at q (a gap between far-apart components) any point of the
    /// flat stretch may be returned.
    pub fn quantile(&self, q: f64) -> f64 {
        if q.is_nan() {
            return f64::NAN;
        }
        if q <= 0.0 {
            return f64::NEG_INFINITY;
        }
        if q >= 1.0 {
            return f64::INFINITY;
        }
        let (mut a, mut b) = self
            .live()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, m, s)| {
                (a.min(m - 40.0 * s), b.max(m + 40.0 * s))
            });
        if !(a.is_finite() && b.is_finite()) {
            return f64::NAN;
        }
        let tol_sigma = 1e-10 * self.min_sigma();
        let upper = q > 0.5;
        // Exact for q in (½, 1) (Sterbenz).
        let q_sf = 1.0 - q;
        // g is increasing with its root at the quantile; g(a) < 0 < g(b) because
        // Φ(−40) underflows to 0.
        let g = |x: f64| {
            if upper {
                q_sf - self.sf(x)
            } else {
                self.cdf(x) - q
            }
        };
        let tol_at = |x: f64| tol_sigma.max(4.0 * f64::EPSILON * x.abs());

        let mut x = self.mean().clamp(a, b);
        let mut gx = g(x);
        let mut dx_old = b - a;
        let mut dx = dx_old;
        for _ in 0..1000 {
            if gx == 0.0 {
                return x;
            }
            if gx < 0.0 {
                a = x;
            } else {
                b = x;
            }
            let mid = 0.5 * (a + b);
            if b - a <= tol_at(mid) || mid <= a || mid >= b {
                return mid;
            }
            let d = self.pdf(x);
            let newton = x - gx / d;
            // Bisect when Newton leaves the bracket or does not at least halve
            // the step before last (Numerical Recipes' rtsafe rule).
            // Written so that a NaN anywhere selects bisection.
            let newton_ok =
                d > 0.0 && newton > a && newton < b && (2.0 * gx).abs() <= (dx_old * d).abs();
            dx_old = dx;
            if !newton_ok {
                dx = b - mid;
                x = mid;
            } else {
                dx = x - newton;
                x = newton;
            }
            gx = g(x);
            // Newton converges from one side, so the bracket would not close by
            // itself: probe one tolerance past x towards the root.
            let tol = tol_at(x);
            if dx.abs() <= tol && gx != 0.0 {
                if gx < 0.0 {
                    a = x;
                } else {
                    b = x;
                }
                let probe = if gx < 0.0 { x + tol } else { x - tol };
                if probe > a && probe < b {
                    x = probe;
                    gx = g(x);
                }
            }
        }
        x
    }

    /// The median, `quantile(0.5)`.
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The global maximum of the density (Carreira-Perpiñán 2000): hill-climb
    /// from every component mean, keep the highest. In 1-D every mode lies in
    /// [min μ, max μ], and starting at each mean catches a narrow spike as well
    /// as a wide bump.
    pub fn mode(&self) -> f64 {
        let lc = LogComps::new(self);
        let tol_sigma = 1e-12 * self.min_sigma();
        let mut best = (f64::NAN, f64::NEG_INFINITY);
        for (i, &(_, m, _)) in lc.0.iter().enumerate() {
            if lc.0[..i].iter().any(|c| c.1 == m) {
                continue;
            }
            let cand = lc.climb(m, tol_sigma);
            if cand.1 > best.1 {
                best = cand;
            }
        }
        best.0
    }

    /// Continuous ranked probability score at `t` in closed form (Grimit et al. 2006):
    /// Σ_k π_k A(t−μ_k, σ_k²) − ½ Σ_j Σ_k π_j π_k A(μ_j−μ_k, σ_j²+σ_k²).
    pub fn crps(&self, t: f64) -> f64 {
        let mut fit = 0.0;
        let mut spread = 0.0;
        for (j, (pj, mj, sj)) in self.comps().enumerate() {
            fit += pj * crps_a(t - mj, sj);
            // Symmetric in (j, k): diagonal once, off-diagonal twice.
            spread += pj * pj * crps_a(0.0, std::f64::consts::SQRT_2 * sj);
            for (pk, mk, sk) in self.comps().skip(j + 1) {
                spread += 2.0 * pj * pk * crps_a(mj - mk, sj.hypot(sk));
            }
        }
        fit - 0.5 * spread
    }

    /// Probability integral transform, F(t).
    pub fn pit(&self, t: f64) -> f64 {
        self.cdf(t)
    }

    /// Whether `t` lies in the central `q` interval, i.e. (1−q)/2 ≤ F(t) ≤ (1+q)/2.
    pub fn in_central_interval(&self, t: f64, q: f64) -> bool {
        in_central(self.cdf(t), q)
    }
}

fn in_central(u: f64, q: f64) -> bool {
    (1.0 - q) / 2.0 <= u && u <= (1.0 + q) / 2.0
}

/// Two-sided Kolmogorov–Smirnov distance sup_x |ECDF(x) − x| of values in [0, 1]
/// against the uniform distribution. Sorts `u` in place; 0 for an empty slice.
pub fn ks_uniform(u: &mut [f64]) -> f64 {
    u.sort_by(f64::total_cmp);
    let n = u.len() as f64;
    u.iter()
        .enumerate()
        .map(|(i, &x)| {
            // The ECDF jumps from i/n to (i+1)/n at x: check both sides.
            let below = x - i as f64 / n;
            let above = (i + 1) as f64 / n - x;
            below.max(above)
        })
        .fold(0.0, f64::max)
}

/// PIT values kept exactly, for the exact KS distance, up to this many rows
/// (32 MiB of f64); past it they go into [`KS_BINS`] counters instead, so
/// `eval`'s memory stays bounded whatever the rows.
pub const KS_EXACT_ROWS: usize = 1 << 22;
/// Counters of the binned KS distance: its error is at most 1/KS_BINS.
pub const KS_BINS: usize = 1 << 20;

/// The KS distance to the uniform distribution of PIT values streamed in:
/// exact (sorted values) up to [`KS_EXACT_ROWS`], then from a histogram of
/// [`KS_BINS`] bins, as an upper bound at most 1/KS_BINS above the exact
/// value (never below it: a miscalibration is never understated).
#[derive(Clone, Debug)]
pub enum KsAccumulator {
    Exact(Vec<f64>),
    Binned { counts: Vec<u64>, rows: u64 },
}

impl Default for KsAccumulator {
    fn default() -> Self {
        KsAccumulator::Exact(Vec::new())
    }
}

impl KsAccumulator {
    /// `u` in [0, 1].
    pub fn add(&mut self, u: f64) {
        match self {
            KsAccumulator::Exact(v) if v.len() < KS_EXACT_ROWS => v.push(u),
            KsAccumulator::Exact(v) => {
                let mut binned = KsAccumulator::Binned {
                    counts: vec![0; KS_BINS],
                    rows: 0,
                };
                for &x in v.iter() {
                    binned.add(x);
                }
                binned.add(u);
                *self = binned;
            }
            KsAccumulator::Binned { counts, rows } => {
                let bin = ((u * KS_BINS as f64) as usize).min(KS_BINS - 1);
                counts[bin] += 1;
                *rows += 1;
            }
        }
    }

    /// sup |ECDF(u) − u|; 0 with no values.
    pub fn finish(self) -> f64 {
        match self {
            KsAccumulator::Exact(mut v) => ks_uniform(&mut v),
            KsAccumulator::Binned { counts, rows } => {
                let n = rows as f64;
                let width = 1.0 / KS_BINS as f64;
                let mut before = 0u64;
                let mut d = 0.0f64;
                for (j, &c) in counts.iter().enumerate() {
                    if c > 0 {
                        // The bin's values lie in [a, b) with ranks before+1
                        // ..= before+c: each "above" term is at most
                        // (before + c)/n − a, each "below" at most
                        // b − before/n (ks_uniform's two sides).
                        let (a, b) = (j as f64 * width, (j + 1) as f64 * width);
                        let above = (before + c) as f64 / n - a;
                        let below = b - before as f64 / n;
                        d = d.max(above).max(below);
                    }
                    before += c;
                }
                d.min(1.0)
            }
        }
    }
}

/// Calibration summary of a mixture model over a data set (D = 1).
///
/// With no rows, the averages, `pit_ks` and the component usage are NaN,
/// so no component counts as dead or dominant.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub rows: usize,
    /// Mean CRPS over rows.
    pub crps: f64,
    /// KS distance of the PIT values from uniform.
    pub pit_ks: f64,
    /// Share of targets inside the central 50 % interval.
    pub coverage_50: f64,
    /// Share of targets inside the central 90 % interval.
    pub coverage_90: f64,
    /// Mean of (t − mixture mean)².
    pub mse_mean: f64,
    /// How much weight each component gets.
    pub usage: ComponentUsage,
    /// Counts of PIT values in 20 equal bins of [0, 1] (1.0 goes in the last).
    pub pit_histogram: Vec<usize>,
    /// (nominal q, empirical share inside the central q interval), q = 0.05, 0.10, …, 0.95.
    pub coverage_curve: Vec<(f64, f64)>,
}

/// How a mixture model uses its components over a data set (any D).
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentUsage {
    /// π_k averaged over rows (raw, not renormalised).
    pub mean_pi: Vec<f64>,
    /// Smallest π_k over rows.
    pub min_pi: Vec<f64>,
}

impl ComponentUsage {
    /// Components whose mean π is below [`DEAD_PI`].
    pub fn dead_components(&self) -> Vec<usize> {
        (0..self.mean_pi.len())
            .filter(|&k| self.mean_pi[k] < DEAD_PI)
            .collect()
    }

    /// A component holding more than 95 % of the weight on every row, if any
    /// (at most one can).
    pub fn dominant_component(&self) -> Option<usize> {
        self.min_pi.iter().position(|&p| p > DOMINANT_PI)
    }

    /// What to try, in words, when components are dead or one dominates;
    /// `None` when the mixture uses its components.
    pub fn advice(&self) -> Option<String> {
        let dead = self.dead_components();
        if let Some(k) = self.dominant_component() {
            return Some(format!(
                "component {k} holds more than {:.0} % of the weight on every row: the model is \
                 effectively one Gaussian; if the data has several answers per input, try a \
                 smaller --lr, more --steps or another --seed",
                DOMINANT_PI * 100.0
            ));
        }
        if dead.is_empty() {
            return None;
        }
        let list: Vec<String> = dead.iter().map(|k| k.to_string()).collect();
        let k = self.mean_pi.len();
        Some(format!(
            "{} of {k} components are dead (mean π < {DEAD_PI}): {}; the fit uses {}, so a \
             smaller --k would do (spare components can still help training find the modes)",
            dead.len(),
            list.join(", "),
            k - dead.len()
        ))
    }
}

/// Streams the π of each row into a [`ComponentUsage`].
#[derive(Clone, Debug)]
pub struct UsageAccumulator {
    rows: usize,
    pi_sum: Vec<f64>,
    pi_min: Vec<f64>,
}

impl UsageAccumulator {
    pub fn new(k: usize) -> Self {
        UsageAccumulator {
            rows: 0,
            pi_sum: vec![0.0; k],
            pi_min: vec![f64::INFINITY; k],
        }
    }

    /// Adds one row's mixture weights.
    pub fn add(&mut self, pi: &[f32]) {
        self.rows += 1;
        for ((s, m), &p) in self.pi_sum.iter_mut().zip(&mut self.pi_min).zip(pi) {
            let p = f64::from(p);
            *s += p;
            *m = m.min(p);
        }
    }

    /// With no rows, both vectors are NaN, so no component counts as dead
    /// or dominant.
    pub fn finish(self) -> ComponentUsage {
        if self.rows == 0 {
            let k = self.pi_sum.len();
            return ComponentUsage {
                mean_pi: vec![f64::NAN; k],
                min_pi: vec![f64::NAN; k],
            };
        }
        let n = self.rows as f64;
        ComponentUsage {
            mean_pi: self.pi_sum.iter().map(|s| s / n).collect(),
            min_pi: self.pi_min,
        }
    }
}

/// Streams rows into a [`Calibration`], in memory that does not grow past
/// [`KS_EXACT_ROWS`] rows ([`KsAccumulator`]).
#[derive(Clone, Debug)]
pub struct CalibrationAccumulator {
    k: usize,
    rows: usize,
    crps_sum: f64,
    sq_err_sum: f64,
    ks: KsAccumulator,
    usage: UsageAccumulator,
    hist: Vec<usize>,
    /// inside[i]: rows inside the central (i+1)/COVERAGE_STEPS interval.
    inside: Vec<usize>,
}

impl CalibrationAccumulator {
    /// An accumulator for mixtures of `k` components.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            rows: 0,
            crps_sum: 0.0,
            sq_err_sum: 0.0,
            ks: KsAccumulator::default(),
            usage: UsageAccumulator::new(k),
            hist: vec![0; PIT_BINS],
            inside: vec![0; COVERAGE_STEPS - 1],
        }
    }

    fn level(i: usize) -> f64 {
        (i + 1) as f64 / COVERAGE_STEPS as f64
    }

    /// Adds one row: its predicted mixture and observed target.
    ///
    /// # Panics
    /// If the mixture does not have `k` components.
    pub fn add(&mut self, m: &Mix1, t: f32) {
        assert_eq!(
            m.pi.len(),
            self.k,
            "mixture has the wrong number of components"
        );
        let t = f64::from(t);
        let u = m.pit(t);
        self.rows += 1;
        self.crps_sum += m.crps(t);
        let err = t - m.mean();
        self.sq_err_sum += err * err;
        self.ks.add(u);
        let bin = ((u * PIT_BINS as f64) as usize).min(PIT_BINS - 1);
        self.hist[bin] += 1;
        for (i, c) in self.inside.iter_mut().enumerate() {
            if in_central(u, Self::level(i)) {
                *c += 1;
            }
        }
        self.usage.add(m.pi);
    }

    /// The summary over all rows added.
    pub fn finish(self) -> Calibration {
        let n = self.rows as f64;
        let share = |c: usize| c as f64 / n;
        let coverage_curve: Vec<(f64, f64)> = self
            .inside
            .iter()
            .enumerate()
            .map(|(i, &c)| (Self::level(i), share(c)))
            .collect();
        let at = |q: f64| {
            coverage_curve
                .iter()
                .find(|(l, _)| (l - q).abs() < 1e-12)
                .map_or(f64::NAN, |&(_, s)| s)
        };
        let (coverage_50, coverage_90) = (at(0.5), at(0.9));
        Calibration {
            rows: self.rows,
            crps: self.crps_sum / n,
            pit_ks: if self.rows == 0 {
                f64::NAN
            } else {
                self.ks.finish()
            },
            coverage_50,
            coverage_90,
            mse_mean: self.sq_err_sum / n,
            usage: self.usage.finish(),
            pit_histogram: self.hist,
            coverage_curve,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Owned parameters so tests can build `Mix1` views.
    #[derive(Clone, Debug)]
    struct Owned {
        pi: Vec<f32>,
        mu: Vec<f32>,
        sigma: Vec<f32>,
    }

    impl Owned {
        fn new(pi: &[f32], mu: &[f32], sigma: &[f32]) -> Self {
            Self {
                pi: pi.to_vec(),
                mu: mu.to_vec(),
                sigma: sigma.to_vec(),
            }
        }
        fn mix(&self) -> Mix1<'_> {
            Mix1 {
                pi: &self.pi,
                mu: &self.mu,
                sigma: &self.sigma,
            }
        }
        fn live(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
            self.mix().live()
        }
        fn lo_hi(&self, n_sigma: f64) -> (f64, f64) {
            self.live()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, m, s)| {
                    (a.min(m - n_sigma * s), b.max(m + n_sigma * s))
                })
        }
        fn min_sigma(&self) -> f64 {
            self.mix().min_sigma()
        }
    }

    /// Random mixture: K in 1..=max_k, σ log-uniform over [10^lo, 10^hi].
    fn random_mix(rng: &mut ChaCha8Rng, max_k: usize, spread: f64, log_sigma: (f64, f64)) -> Owned {
        let k = rng.random_range(1..=max_k);
        let raw: Vec<f64> = (0..k)
            .map(|_| -(rng.random::<f64>().max(1e-12)).ln())
            .collect();
        let total: f64 = raw.iter().sum();
        let pi = raw.iter().map(|r| (r / total) as f32).collect();
        let mu = (0..k)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * spread) as f32)
            .collect();
        let sigma = (0..k)
            .map(|_| 10f64.powf(rng.random_range(log_sigma.0..=log_sigma.1)) as f32)
            .collect();
        Owned { pi, mu, sigma }
    }

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        // Box–Muller; 1 − u keeps the log argument in (0, 1].
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn sample(rng: &mut ChaCha8Rng, o: &Owned) -> f64 {
        let u = rng.random::<f64>() * o.pi.iter().map(|&p| f64::from(p)).sum::<f64>();
        let mut acc = 0.0;
        let mut k = o.pi.len() - 1;
        for (i, &p) in o.pi.iter().enumerate() {
            acc += f64::from(p);
            if u < acc {
                k = i;
                break;
            }
        }
        f64::from(o.mu[k]) + f64::from(o.sigma[k]) * normal(rng)
    }

    /// Adaptive Simpson with Richardson correction; `fs` = f at (a, mid, b).
    fn simpson_rec<F: Fn(f64) -> f64>(
        f: &F,
        (a, b): (f64, f64),
        fs: [f64; 3],
        whole: f64,
        eps: f64,
        depth: u32,
    ) -> f64 {
        let [fa, fm, fb] = fs;
        let m = 0.5 * (a + b);
        let (flm, frm) = (f(0.5 * (a + m)), f(0.5 * (m + b)));
        let left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
        let right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
        let delta = left + right - whole;
        if depth == 0 || delta.abs() <= 15.0 * eps {
            left + right + delta / 15.0
        } else {
            simpson_rec(f, (a, m), [fa, flm, fm], left, 0.5 * eps, depth - 1)
                + simpson_rec(f, (m, b), [fm, frm, fb], right, 0.5 * eps, depth - 1)
        }
    }

    fn adaptive_simpson<F: Fn(f64) -> f64>(f: &F, a: f64, b: f64, eps: f64) -> f64 {
        let fs = [f(a), f(0.5 * (a + b)), f(b)];
        let whole = (b - a) / 6.0 * (fs[0] + 4.0 * fs[1] + fs[2]);
        simpson_rec(f, (a, b), fs, whole, eps, 50)
    }

    /// Integrate over consecutive breakpoints at μ_k + c·σ_k (and `extra`), so
    /// narrow components are never stepped over.
    fn integrate<F: Fn(f64) -> f64>(o: &Owned, extra: &[f64], f: F, eps: f64) -> f64 {
        let mut pts: Vec<f64> = extra.to_vec();
        for (_, m, s) in o.live() {
            for c in [
                -40.0, -20.0, -10.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 10.0, 20.0, 40.0,
            ] {
                pts.push(m + c * s);
            }
        }
        pts.sort_by(f64::total_cmp);
        pts.dedup();
        let n = (pts.len() - 1) as f64;
        pts.windows(2)
            .map(|w| adaptive_simpson(&f, w[0], w[1], eps / n))
            .sum()
    }

    /// Test-local CDF, independent of `Mix1::cdf`.
    fn ref_cdf(o: &Owned, x: f64) -> f64 {
        let total: f64 = o.pi.iter().map(|&p| f64::from(p)).sum();
        o.pi.iter()
            .zip(&o.mu)
            .zip(&o.sigma)
            .map(|((&p, &m), &s)| {
                f64::from(p) / total
                    * 0.5
                    * libm::erfc(-(x - f64::from(m)) / (f64::from(s) * std::f64::consts::SQRT_2))
            })
            .sum()
    }

    fn bisect_quantile(o: &Owned, q: f64) -> f64 {
        let (mut a, mut b) = o.lo_hi(50.0);
        loop {
            let mid = 0.5 * (a + b);
            if mid <= a || mid >= b {
                return mid;
            }
            if ref_cdf(o, mid) < q {
                a = mid;
            } else {
                b = mid;
            }
        }
    }

    fn grid_mode(o: &Owned) -> f64 {
        let m = o.mix();
        let lo = o.live().map(|c| c.1).fold(f64::INFINITY, f64::min);
        let hi = o.live().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
        if hi == lo {
            return lo;
        }
        let step = o.min_sigma() / 20.0;
        let n = ((hi - lo) / step).ceil() as usize;
        assert!(n <= 5_000_000, "grid too fine: {n}");
        let step = (hi - lo) / n as f64;
        let best = (0..=n)
            .map(|i| lo + i as f64 * step)
            .map(|x| (x, m.pdf(x)))
            .fold(
                (lo, f64::NEG_INFINITY),
                |b, c| if c.1 > b.1 { c } else { b },
            );
        // Refine by bisection on the sign of p' (test-local, analytic) in the
        // neighbouring cells, where p is unimodal since step ≪ σ_min.
        let dpdf = |x: f64| -> f64 {
            o.live()
                .map(|(p, mu, s)| {
                    let z = (x - mu) / s;
                    -p * z * (-0.5 * z * z).exp() / (s * s)
                })
                .sum()
        };
        let (mut a, mut b) = (best.0 - step, best.0 + step);
        loop {
            let mid = 0.5 * (a + b);
            if mid <= a || mid >= b {
                return mid;
            }
            if dpdf(mid) > 0.0 {
                a = mid;
            } else {
                b = mid;
            }
        }
    }

    #[test]
    fn crps_matches_numerical_integration() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut cases: Vec<(Owned, f64)> = Vec::new();
        for i in 0..40 {
            let o = random_mix(&mut rng, 4, 5.0, (-2.0, 1.0));
            let sd = o.mix().variance().sqrt();
            let mean = o.mix().mean();
            let t = match i % 4 {
                0 => mean,
                1 => sample(&mut rng, &o),
                2 => mean + 12.0 * sd, // far in the upper tail
                _ => mean - 30.0 * sd, // far in the lower tail
            };
            cases.push((o, t));
        }
        cases.push((Owned::new(&[1.0], &[0.0], &[1.0]), 0.0));
        for (o, t) in &cases {
            let m = o.mix();
            let f = |x: f64| {
                // ∫ F² below t + ∫ (1 − F)² above: same integrand, split at the jump.
                if x < *t {
                    m.cdf(x).powi(2)
                } else {
                    m.sf(x).powi(2)
                }
            };
            let num = integrate(o, &[*t], f, 1e-13);
            let closed = m.crps(*t);
            assert!(
                (closed - num).abs() <= 1e-6 * closed.abs() + 1e-12,
                "{o:?} t={t}: closed {closed} vs numeric {num}"
            );
        }
        // Known value: N(0,1) at its mean, 2φ(0) − 1/√π.
        let o = Owned::new(&[1.0], &[0.0], &[1.0]);
        let known = 2.0 * INV_SQRT_2PI - 1.0 / std::f64::consts::PI.sqrt();
        assert!((o.mix().crps(0.0) - known).abs() < 1e-14);
    }

    #[test]
    fn quantiles_match_bisection() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let qs = [0.001, 0.05, 0.5, 0.95, 0.999];
        let mut cases: Vec<Owned> = (0..60)
            .map(|_| random_mix(&mut rng, 5, 10.0, (-4.0, 2.0)))
            .collect();
        // Hand-made multimodal ones: tiny spike + huge bump, well-separated modes.
        cases.push(Owned::new(&[0.3, 0.7], &[0.0, 5.0], &[1e-5, 1e3]));
        cases.push(Owned::new(
            &[0.5, 0.2, 0.3],
            &[-100.0, 0.0, 100.0],
            &[0.01, 1e-4, 2.0],
        ));
        cases.push(Owned::new(&[0.999, 0.001], &[0.0, 1.0], &[1e-6, 1e4]));
        // Far from the origin and at both extremes of scale.
        cases.push(Owned::new(&[0.4, 0.6], &[1.0e5, 1.0001e5], &[1e-3, 5e-3]));
        cases.push(Owned::new(&[0.45, 0.55], &[-3e7, 3e7], &[1e6, 2e6]));
        cases.push(Owned::new(&[0.5, 0.5], &[-3e-7, 3e-7], &[1e-7, 2e-8]));
        for o in &cases {
            let m = o.mix();
            let scale = m.variance().sqrt();
            for &q in &qs {
                let x = m.quantile(q);
                let xb = bisect_quantile(o, q);
                assert!(
                    (x - xb).abs() <= 1e-6 * scale,
                    "{o:?} q={q}: {x} vs bisection {xb}, scale {scale}"
                );
                // Slack for the f64 resolution of x where the CDF is steep.
                let slack = 1e-9 + 1e-15 * x.abs() * m.pdf(x);
                assert!(
                    (m.cdf(x) - q).abs() <= slack,
                    "{o:?} q={q}: cdf(quantile) = {}",
                    m.cdf(x)
                );
            }
            assert_eq!(m.median(), m.quantile(0.5));
        }
        // The original-units contract: 1e-4 absolute on data around 1e5.
        let o = &cases[cases.len() - 3];
        for &q in &qs {
            assert!((o.mix().quantile(q) - bisect_quantile(o, q)).abs() < 1e-4);
        }
        // Where F is flat at q (a gap between far-apart halves) any point of the
        // flat stretch is a valid answer: only require F(x) = q there.
        let o = Owned::new(&[0.5, 0.5], &[-3e7, 3e7], &[1e6, 2e6]);
        let x = o.mix().median();
        assert!(
            x > -2e7 && x < 1e7 && (o.mix().cdf(x) - 0.5).abs() < 1e-12,
            "{x}"
        );
        let m = cases[0].mix();
        assert_eq!(m.quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(m.quantile(1.0), f64::INFINITY);
        assert!(m.quantile(f64::NAN).is_nan());
    }

    #[test]
    fn extreme_quantiles_are_accurate() {
        // The survival-function branch keeps relative accuracy in the upper tail.
        let o = Owned::new(&[1.0], &[2.0], &[3.0]);
        let m = o.mix();
        for q in [1e-12, 1e-6, 1.0 - 1e-6, 1.0 - 1e-12] {
            let x = m.quantile(q);
            let tail = if q < 0.5 { m.cdf(x) } else { m.sf(x) };
            let want = if q < 0.5 { q } else { 1.0 - q };
            assert!((tail / want - 1.0).abs() < 1e-6, "q={q}: tail {tail}");
        }
        // Symmetry of a single Gaussian.
        let lo = m.quantile(1e-9);
        let hi = m.quantile(1.0 - 1e-9);
        assert!((lo + hi - 4.0).abs() < 1e-6);
    }

    #[test]
    fn mode_matches_grid_search() {
        // (mixture, expected region of the global mode)
        let hand = [
            // Narrow spike on the flank beats the wide bump.
            (Owned::new(&[0.2, 0.8], &[1.0, 0.0], &[0.01, 1.0]), 1.0),
            // Wide bump beats a low spike in its tail.
            (Owned::new(&[0.002, 0.998], &[3.0, 0.0], &[0.01, 1.0]), 0.0),
            // Spike sitting on the bump, off-centre.
            (Owned::new(&[0.05, 0.95], &[0.5, 0.0], &[0.001, 1.0]), 0.5),
            // σ ratio 1e4.
            (Owned::new(&[0.01, 0.99], &[-5.0, 5.0], &[1e-4, 1.0]), -5.0),
            (
                Owned::new(&[0.00005, 0.99995], &[-5.0, 5.0], &[1e-4, 1.0]),
                5.0,
            ),
            // Two merged bumps: the mode is at neither mean.
            (Owned::new(&[0.5, 0.5], &[0.0, 1.9], &[1.0, 1.0]), 0.95),
            (Owned::new(&[0.6, 0.4], &[0.0, 1.0], &[1.0, 1.0]), 0.4),
        ];
        for (o, near) in &hand {
            let m = o.mix();
            let x = m.mode();
            let g = grid_mode(o);
            assert!(
                (x - g).abs() <= 1e-6 * o.min_sigma(),
                "{o:?}: mode {x} vs grid {g}"
            );
            assert!((x - near).abs() < 0.5, "{o:?}: mode {x} not near {near}");
            assert!(m.pdf(x) >= m.pdf(g) * (1.0 - 1e-12));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..60 {
            let o = random_mix(&mut rng, 5, 5.0, (-2.0, 0.5));
            let m = o.mix();
            let x = m.mode();
            let g = grid_mode(&o);
            let (px, pg) = (m.pdf(x), m.pdf(g));
            assert!(
                px >= pg * (1.0 - 1e-12),
                "{o:?}: pdf(mode)={px} < pdf(grid)={pg}"
            );
            // Locations must agree unless two modes are (almost) equally high.
            if (x - g).abs() > 1e-6 * o.min_sigma() {
                assert!((px - pg).abs() <= 1e-6 * px, "{o:?}: mode {x} vs grid {g}");
            }
        }
    }

    #[test]
    fn calibration_detects_good_and_overconfident_forecasts() {
        let n = 20_000;
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let k = 3;
        let mut good = CalibrationAccumulator::new(k);
        let mut narrow = CalibrationAccumulator::new(k);
        for _ in 0..n {
            let mut o = random_mix(&mut rng, 1, 3.0, (-1.0, 0.5));
            // Pad to exactly k components.
            while o.pi.len() < k {
                let extra = random_mix(&mut rng, 1, 3.0, (-1.0, 0.5));
                let w: f32 = rng.random_range(0.1..0.5);
                o.pi.iter_mut().for_each(|p| *p *= 1.0 - w);
                o.pi.push(w);
                o.mu.push(extra.mu[0]);
                o.sigma.push(extra.sigma[0]);
            }
            let t = sample(&mut rng, &o) as f32;
            good.add(&o.mix(), t);
            let mut thin = o.clone();
            thin.sigma.iter_mut().for_each(|s| *s *= 0.5);
            narrow.add(&thin.mix(), t);
        }
        let good = good.finish();
        let narrow = narrow.finish();
        let bound = 1.63 / (n as f64).sqrt();
        assert_eq!(good.rows, n);
        assert!(good.pit_ks < bound, "pit_ks {} >= {bound}", good.pit_ks);
        assert!(
            (good.coverage_50 - 0.5).abs() <= 0.02,
            "{}",
            good.coverage_50
        );
        assert!(
            (good.coverage_90 - 0.9).abs() <= 0.02,
            "{}",
            good.coverage_90
        );
        for &(q, s) in &good.coverage_curve {
            assert!((s - q).abs() <= 0.02, "coverage at {q}: {s}");
        }
        assert_eq!(good.pit_histogram.iter().sum::<usize>(), n);
        let expect = n as f64 / 20.0;
        for &c in &good.pit_histogram {
            assert!(
                (c as f64 - expect).abs() < 5.0 * expect.sqrt(),
                "{:?}",
                good.pit_histogram
            );
        }
        assert!(narrow.coverage_90 < 0.8, "{}", narrow.coverage_90);
        assert!(narrow.pit_ks > 5.0 * bound, "{}", narrow.pit_ks);
        // CRPS is proper: the true forecast scores better.
        assert!(good.crps < narrow.crps);
        // Same means, so the same MSE of the mean.
        assert!((good.mse_mean - narrow.mse_mean).abs() < 1e-9 * good.mse_mean);
        assert!(good.usage.dead_components().is_empty());
        assert_eq!(good.usage.dominant_component(), None);
    }

    #[test]
    fn binned_ks_bounds_the_exact_one_from_above_within_a_bin() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Calibrated, skewed (u²) and a point mass: past the exact limit.
        for shape in 0..3 {
            let n = KS_EXACT_ROWS + 1000;
            let mut all = Vec::with_capacity(n);
            let mut acc = KsAccumulator::default();
            for _ in 0..n {
                let x: f64 = rng.random();
                let u = match shape {
                    0 => x,
                    1 => x * x,
                    _ => 0.25,
                };
                all.push(u);
                acc.add(u);
            }
            assert!(matches!(acc, KsAccumulator::Binned { .. }));
            let exact = ks_uniform(&mut all);
            let binned = acc.finish();
            assert!(
                binned >= exact && binned - exact <= 1.0 / KS_BINS as f64 + 1e-12,
                "shape {shape}: binned {binned} exact {exact}"
            );
        }
        // Below the limit the value is exact.
        let mut acc = KsAccumulator::default();
        for u in [0.7, 0.1, 0.5] {
            acc.add(u);
        }
        assert!((acc.finish() - 0.3).abs() < 1e-15);
    }

    #[test]
    fn ks_uniform_by_hand() {
        // Sorted 0.1, 0.5, 0.7 (n = 3): steps 1/3 − 0.1, 2/3 − 0.5, 1 − 0.7 = 0.3 above.
        let mut u = vec![0.7, 0.1, 0.5];
        assert!((ks_uniform(&mut u) - 0.3).abs() < 1e-15);
        assert_eq!(u, vec![0.1, 0.5, 0.7]);
        // Below-the-step side: 0.8 − 0/2 = 0.8.
        assert!((ks_uniform(&mut [0.9, 0.8]) - 0.8).abs() < 1e-15);
        // Evenly spread midpoints: 1/(2n).
        let mut u: Vec<f64> = (0..10).map(|i| (i as f64 + 0.5) / 10.0).collect();
        assert!((ks_uniform(&mut u) - 0.05).abs() < 1e-15);
        assert_eq!(ks_uniform(&mut []), 0.0);
    }

    #[test]
    fn component_usage_by_hand() {
        let mu = [0.0f32, 1.0, 2.0];
        let sigma = [1.0f32; 3];
        let mut acc = CalibrationAccumulator::new(3);
        for pi in [[0.5f32, 0.5, 0.0], [0.3, 0.7, 0.0]] {
            acc.add(
                &Mix1 {
                    pi: &pi,
                    mu: &mu,
                    sigma: &sigma,
                },
                0.0,
            );
        }
        let c = acc.finish();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-7);
        assert!(
            close(&c.usage.mean_pi, &[0.4, 0.6, 0.0]),
            "{:?}",
            c.usage.mean_pi
        );
        assert!(
            close(&c.usage.min_pi, &[0.3, 0.5, 0.0]),
            "{:?}",
            c.usage.min_pi
        );
        assert_eq!(c.usage.dead_components(), vec![2]);
        assert_eq!(c.usage.dominant_component(), None);

        let mut acc = CalibrationAccumulator::new(3);
        for pi in [[0.97f32, 0.03, 0.0], [0.99, 0.0095, 0.0005]] {
            acc.add(
                &Mix1 {
                    pi: &pi,
                    mu: &mu,
                    sigma: &sigma,
                },
                0.0,
            );
        }
        let c = acc.finish();
        assert_eq!(c.usage.dead_components(), vec![2]);
        assert_eq!(c.usage.dominant_component(), Some(0));

        // Mean above 0.95 but one row below: not dominant.
        let mut acc = CalibrationAccumulator::new(2);
        for pi in [[0.999f32, 0.001], [0.999, 0.001], [0.94, 0.06]] {
            acc.add(
                &Mix1 {
                    pi: &pi,
                    mu: &mu[..2],
                    sigma: &sigma[..2],
                },
                0.0,
            );
        }
        let c = acc.finish();
        assert!(c.usage.mean_pi[0] > 0.95);
        assert_eq!(c.usage.dominant_component(), None);
        assert!(c.usage.dead_components().is_empty());

        let empty = CalibrationAccumulator::new(2).finish();
        assert_eq!(empty.rows, 0);
        assert!(
            empty.usage.dead_components().is_empty() && empty.usage.dominant_component().is_none()
        );
    }

    #[test]
    fn single_gaussian_summary_by_hand() {
        let o = Owned::new(&[1.0], &[0.0], &[1.0]);
        let mut acc = CalibrationAccumulator::new(1);
        acc.add(&o.mix(), 0.0); // PIT 0.5: bin 10, inside every interval
        acc.add(&o.mix(), 1.0); // PIT 0.8413: bin 16, inside only for q ≥ 0.6827
        let c = acc.finish();
        assert_eq!(c.coverage_50, 0.5);
        assert_eq!(c.coverage_90, 1.0);
        assert_eq!(c.pit_histogram[10], 1);
        assert_eq!(c.pit_histogram[16], 1);
        for &(q, s) in &c.coverage_curve {
            assert_eq!(s, if q >= 0.6827 { 1.0 } else { 0.5 }, "q={q}");
        }
        assert_eq!(c.coverage_curve.len(), 19);
        assert!(
            (c.coverage_curve[9].0 - 0.5).abs() < 1e-15
                && (c.coverage_curve[17].0 - 0.9).abs() < 1e-15
        );
        assert!((c.mse_mean - 0.5).abs() < 1e-15);
        // KS of {0.5, Φ(1)}: max(0.5 − 0, Φ(1) − 0.5, 1 − Φ(1)) = 0.5.
        assert!((c.pit_ks - 0.5).abs() < 1e-12);
        assert!(o.mix().in_central_interval(1.0, 0.7) && !o.mix().in_central_interval(1.0, 0.6));
        assert_eq!(o.mix().pit(0.0), 0.5);
    }

    #[test]
    fn pdf_integrates_to_one_and_cdf_is_monotone() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..40 {
            let o = random_mix(&mut rng, 5, 10.0, (-3.0, 2.0));
            let m = o.mix();
            let total = integrate(&o, &[], |x| m.pdf(x), 1e-12);
            assert!((total - 1.0).abs() < 1e-9, "{o:?}: ∫pdf = {total}");
            // cdf agrees with the integrated pdf, and is non-decreasing.
            let (lo, hi) = o.lo_hi(45.0);
            let x = m.mean();
            let part = integrate(&o, &[x], |y| if y <= x { m.pdf(y) } else { 0.0 }, 1e-12);
            assert!(
                (part - m.cdf(x)).abs() < 1e-9,
                "{o:?}: {part} vs {}",
                m.cdf(x)
            );
            let mut prev = 0.0;
            let n = 200_000;
            for i in 0..=n {
                let f = m.cdf(lo + (hi - lo) * i as f64 / n as f64);
                assert!(f >= prev && (0.0..=1.0).contains(&f));
                prev = f;
            }
            // Mean and variance against their integrals.
            let mean = integrate(&o, &[], |y| y * m.pdf(y), 1e-12);
            let var = integrate(&o, &[], |y| (y - m.mean()).powi(2) * m.pdf(y), 1e-12);
            assert!((mean - m.mean()).abs() < 1e-8 * (1.0 + m.variance().sqrt()));
            assert!((var / m.variance() - 1.0).abs() < 1e-8);
        }
    }
}
