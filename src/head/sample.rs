//! Sampling from a head's distribution with a counter-based RNG (twin of
//! the RNG in `shaders/common.wgsl`), so the GPU and the CPU draw the same
//! numbers from the same seed and every sample is independent of how the
//! work is split. Each head kind's `sample_one` is the CPU twin of its
//! shader's `sample` entry; `head::sample_rows` draws whole batches.

/// PCG-style integer hash (Jarzynski & Olano, "Hash Functions for GPU
/// Rendering", 2020); the shader has the same function.
#[inline]
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Uniform in the open interval (0, 1) for draw `draw` of sample `index`.
#[inline]
pub fn uniform(seed: u32, index: u32, draw: u32) -> f32 {
    let h = pcg_hash(pcg_hash(pcg_hash(seed) ^ index) ^ draw);
    ((h >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// Standard normal by Box–Muller from two uniforms.
#[inline]
pub fn normal(seed: u32, index: u32, draw: u32) -> f32 {
    let u1 = uniform(seed, index, draw);
    let u2 = uniform(seed, index, draw + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Sample settings shared with the shader's uniform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleParams {
    pub k: usize,
    pub d: usize,
    pub per_input: usize,
    pub seed: u32,
    /// σ is scaled by T and π is raised to 1/T (renormalised).
    pub temperature: f32,
}

/// The component a draw comes from: π^(1/T), renormalised (a softmax of
/// the logits at temperature T), inverted at the draw's first uniform.
/// Shared by every mixture head, like the shaders' copies of the loop.
#[inline]
pub fn choose_component(logits: &[f32], p: &SampleParams, index: u32) -> usize {
    let inv_t = 1.0 / p.temperature;
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for &l in logits {
        total += ((l - m) * inv_t).exp();
    }
    let u = uniform(p.seed, index, 0) * total;
    let mut cum = 0.0f32;
    for (k, &l) in logits.iter().enumerate() {
        cum += ((l - m) * inv_t).exp();
        if u < cum {
            return k;
        }
    }
    logits.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_uniform_and_normals_normal() {
        let n = 200_000u32;
        let (mut s, mut s2, mut under) = (0.0f64, 0.0f64, 0usize);
        for i in 0..n {
            let u = uniform(9, i, 0);
            assert!(u > 0.0 && u < 1.0);
            if u < 0.25 {
                under += 1;
            }
            let z = normal(9, i, 1) as f64;
            s += z;
            s2 += z * z;
        }
        assert!((under as f64 / n as f64 - 0.25).abs() < 0.005);
        let mean = s / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((s2 / n as f64 - 1.0).abs() < 0.02);
    }

    #[test]
    fn samples_follow_mixture_weights_and_temperature() {
        // K = 2, D = 1: π = (0.8, 0.2), μ = (−5, 5), σ = 0.1.
        let head = [
            0.8f32.ln(),
            0.2f32.ln(),
            -5.0,
            5.0,
            0.1f32.ln(),
            0.1f32.ln(),
        ];
        let count = |t: f32| {
            let p = SampleParams {
                k: 2,
                d: 1,
                per_input: 20_000,
                seed: 3,
                temperature: t,
            };
            let mut out = vec![0.0; 20_000];
            crate::head::sample_rows(crate::head::HeadKind::MixtureDiag, &head, &p, &mut out);
            assert!(out.iter().all(|v| (v.abs() - 5.0).abs() < 1.0 * t.max(1.0)));
            out.iter().filter(|&&v| v > 0.0).count() as f64 / 20_000.0
        };
        assert!((count(1.0) - 0.2).abs() < 0.015);
        // T = 0.5 sharpens π to (0.8², 0.2²) renormalised ≈ (0.941, 0.059).
        assert!((count(0.5) - 0.0588).abs() < 0.01);
    }
}
