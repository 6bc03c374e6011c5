//! How a mouse stroke on the playground becomes points: evenly spaced
//! along the path the pointer travelled, with a little jitter across it.
//!
//! Why not "a few points per frame at the pointer": the density then
//! follows the hand's speed, not the drawing. A slow patch piles up a clump,
//! a fast one leaves a gap, and over a gap of one strand the other strand's
//! clumps are the whole conditional distribution, so the MLP's E[y|x]
//! becomes a comb of spikes between them instead of the smooth mean between
//! the strands that the lesson is about.

/// Distance between points along a stroke, in canvas units (the canvas is
/// the unit square): about 190 points for a stroke across the diagonal.
pub const STROKE_SPACING: f32 = 0.006;
/// Standard deviation of the jitter, in canvas units: strands a few pixels
/// wide, like a pen.
pub const STROKE_JITTER: f32 = 0.012;

/// The stroke being drawn: where the pointer was, and how far it has gone
/// since the last point.
#[derive(Clone, Debug, Default)]
pub struct Stroke {
    last: Option<(f32, f32)>,
    travelled: f32,
}

impl Stroke {
    /// The points for the pointer moving to (x, y) while the button is down
    /// (the first call of a stroke places one point where it starts).
    pub fn extend(&mut self, x: f32, y: f32, rng: &mut impl FnMut() -> f32) -> Vec<(f32, f32)> {
        let mut out = Vec::new();
        let mut put = |px: f32, py: f32, out: &mut Vec<(f32, f32)>| {
            out.push((
                px + STROKE_JITTER * gauss(rng),
                py + STROKE_JITTER * gauss(rng),
            ));
        };
        let Some((x0, y0)) = self.last else {
            put(x, y, &mut out);
            self.last = Some((x, y));
            self.travelled = 0.0;
            return out;
        };
        let len = (x - x0).hypot(y - y0);
        if !len.is_finite() || len == 0.0 {
            return out;
        }
        // Points at every multiple of the spacing along the path, counting
        // from the stroke's last point.
        let mut at = STROKE_SPACING - self.travelled;
        while at <= len {
            let t = at / len;
            put(x0 + (x - x0) * t, y0 + (y - y0) * t, &mut out);
            at += STROKE_SPACING;
        }
        self.travelled = len - (at - STROKE_SPACING);
        self.last = Some((x, y));
        out
    }

    /// The button was released: the next stroke starts afresh.
    pub fn lift(&mut self) {
        self.last = None;
        self.travelled = 0.0;
    }
}

/// A standard normal draw from uniform ones (Box–Muller).
pub fn gauss(rng: &mut impl FnMut() -> f32) -> f32 {
    let u1 = rng().max(1e-7);
    let u2 = rng();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_evenly_spaced_whatever_the_pointer_speed() {
        // One stroke along the diagonal walked in uneven steps: slow (many
        // tiny moves), fast (one big jump), a pause (no move).
        let mut s = Stroke::default();
        let mut rng = no_jitter_rng();
        let mut pts = s.extend(0.0, 0.0, &mut rng);
        let mut walk = vec![];
        for i in 1..=50 {
            walk.push(i as f32 * 0.001);
        }
        walk.extend([0.05, 0.05, 0.5, 0.5, 0.9]);
        for &t in &walk {
            pts.extend(s.extend(t, t, &mut rng));
        }
        let step = STROKE_SPACING / 2f32.sqrt();
        assert_eq!(pts.len(), 1 + (0.9 / step) as usize);
        for (i, p) in pts.iter().enumerate() {
            let want = i as f32 * step;
            assert!(
                (p.0 - want).abs() < 1e-4 && (p.1 - want).abs() < 1e-4,
                "{i}: {p:?}"
            );
        }
        // A new stroke starts with a point where it starts.
        s.lift();
        assert_eq!(s.extend(0.3, 0.7, &mut no_jitter_rng()), vec![(0.3, 0.7)]);
    }

    fn no_jitter_rng() -> impl FnMut() -> f32 {
        let mut flip = false;
        move || {
            flip = !flip;
            // gauss(1.0, 0.25) = sqrt(0)·cos(π/2) = 0.
            if flip { 1.0 } else { 0.25 }
        }
    }
}
