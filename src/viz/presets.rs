//! The playground's data presets: shapes a learner would draw, drawn through
//! the same stroke code as the mouse (so they look and train like drawn
//! points), each showing a different way E[y|x] misleads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::stroke::Stroke;
use crate::data::Dataset;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Two crossing strands: the MLP runs flat between them.
    X,
    /// A circle: two branches at every x, the mean in the empty middle.
    Ring,
    /// Two blobs at the same x range, one above the other.
    TwoClusters,
    /// A spiral: up to four branches at one x.
    Spiral,
    /// Bishop's inverse problem drawn as a stroke: three branches mid-way.
    BishopInverse,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::X,
        Preset::Ring,
        Preset::TwoClusters,
        Preset::Spiral,
        Preset::BishopInverse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::X => "x",
            Preset::Ring => "ring",
            Preset::TwoClusters => "clusters",
            Preset::Spiral => "spiral",
            Preset::BishopInverse => "bishop",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Preset::X => "The X",
            Preset::Ring => "A ring",
            Preset::TwoClusters => "Two clusters",
            Preset::Spiral => "A spiral",
            Preset::BishopInverse => "Bishop's inverse",
        }
    }

    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's points on the unit canvas, the same for the same seed.
    pub fn points(self, seed: u64) -> Vec<(f32, f32)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x70_1e5e7);
        let mut uniform = move || rng.random::<f32>();
        let mut out = Vec::new();
        let mut draw = |path: &dyn Fn(f32) -> (f32, f32), out: &mut Vec<(f32, f32)>| {
            let mut s = Stroke::default();
            // Fine steps: the stroke spaces the points evenly anyway.
            for i in 0..=2000 {
                let (x, y) = path(i as f32 / 2000.0);
                out.extend(s.extend(x, y, &mut uniform));
            }
        };
        match self {
            Preset::X => {
                draw(&|t| (0.1 + 0.8 * t, 0.1 + 0.8 * t), &mut out);
                draw(&|t| (0.1 + 0.8 * t, 0.9 - 0.8 * t), &mut out);
            }
            Preset::Ring => {
                draw(
                    &|t| {
                        let a = std::f32::consts::TAU * t;
                        (0.5 + 0.32 * a.cos(), 0.5 + 0.32 * a.sin())
                    },
                    &mut out,
                );
            }
            Preset::TwoClusters => {
                // Scribbles: a tight zig-zag filling each blob.
                for cy in [0.28, 0.72] {
                    draw(
                        &|t| {
                            let zig = (t * 14.0 * std::f32::consts::PI).sin();
                            (0.25 + 0.5 * t, cy + 0.07 * zig)
                        },
                        &mut out,
                    );
                }
            }
            Preset::Spiral => {
                draw(
                    &|t| {
                        let a = 3.0 * std::f32::consts::PI * t;
                        let r = 0.06 + 0.36 * t;
                        (0.5 + r * a.cos(), 0.5 + r * a.sin())
                    },
                    &mut out,
                );
            }
            Preset::BishopInverse => {
                // x = f(y) on the canvas: the toy problem's curve, swapped.
                draw(
                    &|t| {
                        let y = t;
                        let x = y + 0.3 * (std::f32::consts::TAU * y).sin();
                        (0.1 + 0.8 * (x + 0.3) / 1.6, 0.1 + 0.8 * y)
                    },
                    &mut out,
                );
            }
        }
        out.retain(|&(x, y)| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y));
        out
    }
}

/// A preset as a data set with columns `x`, `y` (`render --preset`).
pub fn preset_dataset(preset: Preset, seed: u64) -> Dataset {
    canvas_dataset(preset.points(seed))
}

/// Playground points (canvas units) as a data set with columns `x`, `y`.
pub fn canvas_dataset(points: impl IntoIterator<Item = (f32, f32)>) -> Dataset {
    let (x, y): (Vec<f32>, Vec<f32>) = points.into_iter().unzip();
    Dataset {
        inputs: x,
        targets: y,
        in_dim: 1,
        out_dim: 1,
        input_names: vec!["x".into()],
        target_names: vec!["y".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_fills_the_canvas_and_is_seeded() {
        for p in Preset::ALL {
            let pts = p.points(1);
            assert!(pts.len() > 150, "{p:?}: {}", pts.len());
            assert_eq!(pts, p.points(1));
            assert_ne!(pts, p.points(2));
            assert_eq!(Preset::parse(p.name()), Some(p));
            let (lo, hi) = pts
                .iter()
                .fold((1f32, 0f32), |(a, b), q| (a.min(q.0), b.max(q.0)));
            assert!(lo < 0.3 && hi > 0.7, "{p:?} spans x {lo}..{hi}");
        }
    }
}
