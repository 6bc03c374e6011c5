//! Where data lands on screen: a plot's data rectangle, the pixel rectangle
//! it is drawn into, and the mapping between the two. Device-free, so tests
//! can find the pixel a data point was drawn at.

/// A closed interval of data values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub lo: f32,
    pub hi: f32,
}

impl Span {
    pub fn new(lo: f32, hi: f32) -> Self {
        Span { lo, hi }
    }

    /// The smallest span holding every value, widened by `pad` of its length
    /// on both sides; a degenerate span becomes one unit wide so a plot of
    /// a single point still has axes.
    pub fn of(values: impl IntoIterator<Item = f32>, pad: f32) -> Option<Self> {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return None;
        }
        if hi - lo < 1e-6 {
            return Some(Span::new(lo - 0.5, hi + 0.5));
        }
        let p = (hi - lo) * pad;
        Some(Span::new(lo - p, hi + p))
    }

    pub fn len(&self) -> f32 {
        self.hi - self.lo
    }

    pub fn contains(&self, v: f32) -> bool {
        (self.lo..=self.hi).contains(&v)
    }

    /// Where `v` sits, 0 at `lo` and 1 at `hi`.
    pub fn frac(&self, v: f32) -> f32 {
        (v - self.lo) / self.len()
    }

    pub fn lerp(&self, t: f32) -> f32 {
        self.lo + t * self.len()
    }
}

/// A rectangle in pixels of the render target, origin top-left, y down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelRect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl PixelRect {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        PixelRect { x0, y0, x1, y1 }
    }

    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    pub fn contains(&self, x: f32, y: f32) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }

    /// The rectangle shrunk by the given margins; never inverted.
    pub fn inset(&self, left: f32, top: f32, right: f32, bottom: f32) -> Self {
        let x0 = self.x0 + left;
        let y0 = self.y0 + top;
        PixelRect {
            x0,
            y0,
            x1: (self.x1 - right).max(x0 + 1.0),
            y1: (self.y1 - bottom).max(y0 + 1.0),
        }
    }
}

/// One plot: the horizontal axis shows the network's input, the vertical
/// its target, in data units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotView {
    pub x: Span,
    pub y: Span,
    /// Where the data rectangle is drawn.
    pub rect: PixelRect,
    /// Size of the whole render target in pixels.
    pub target: (u32, u32),
}

impl PlotView {
    pub fn to_pixel(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.rect.x0 + self.x.frac(x) * self.rect.width(),
            self.rect.y1 - self.y.frac(y) * self.rect.height(),
        )
    }

    pub fn from_pixel(&self, px: f32, py: f32) -> (f32, f32) {
        (
            self.x.lerp((px - self.rect.x0) / self.rect.width()),
            self.y.lerp((self.rect.y1 - py) / self.rect.height()),
        )
    }

    /// Data → clip space as `clip = data · (sx, sy) + (ox, oy)`, the affine
    /// map the vertex shaders apply. Worked out in f64: the offsets subtract
    /// nearly equal numbers when the data sits far from zero.
    pub fn clip_transform(&self) -> [f32; 4] {
        let (w, h) = (self.target.0.max(1) as f64, self.target.1.max(1) as f64);
        let r = &self.rect;
        let kx = r.width() as f64 / self.x.len() as f64;
        let ky = r.height() as f64 / self.y.len() as f64;
        let sx = 2.0 * kx / w;
        let sy = 2.0 * ky / h;
        let ox = 2.0 * (r.x0 as f64 - self.x.lo as f64 * kx) / w - 1.0;
        let oy = 1.0 - 2.0 * (r.y1 as f64 + self.y.lo as f64 * ky) / h;
        [sx as f32, sy as f32, ox as f32, oy as f32]
    }

    /// The plot rectangle as a scissor rectangle, clamped to the target.
    pub fn scissor(&self) -> Option<(u32, u32, u32, u32)> {
        let (w, h) = self.target;
        let x0 = self.rect.x0.floor().clamp(0.0, w as f32) as u32;
        let y0 = self.rect.y0.floor().clamp(0.0, h as f32) as u32;
        let x1 = self.rect.x1.ceil().clamp(0.0, w as f32) as u32;
        let y1 = self.rect.y1.ceil().clamp(0.0, h as f32) as u32;
        (x1 > x0 && y1 > y0).then_some((x0, y0, x1 - x0, y1 - y0))
    }
}

/// Tick positions at 1, 2 or 5 × 10ⁿ steps, at most about `max_count` of
/// them, all inside `span`.
pub fn nice_ticks(span: Span, max_count: usize) -> Vec<f32> {
    let len = span.len() as f64;
    if !(len.is_finite() && len > 0.0) || max_count == 0 {
        return Vec::new();
    }
    let range = |step: f64| {
        let first = (span.lo as f64 / step).ceil() as i64;
        let last = (span.hi as f64 / step).floor() as i64;
        first..=last
    };
    // The finest round step that does not give more than `max_count` ticks.
    let mag = 10f64.powf((len / max_count as f64).log10().floor() - 1.0);
    let step = (0..3)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * mag * 10f64.powi(e)))
        .find(|&s| range(s).count() <= max_count)
        .unwrap_or(mag * 1000.0);
    range(step)
        .map(|i| {
            let v = i as f64 * step;
            // −0 prints as "-0".
            if v.abs() < step * 1e-9 { 0.0 } else { v as f32 }
        })
        .collect()
}

/// A tick label with as many decimals as the tick step needs.
pub fn tick_label(v: f32, ticks: &[f32]) -> String {
    let step = match ticks {
        [a, b, ..] => (b - a).abs(),
        _ => 1.0,
    };
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> PlotView {
        PlotView {
            x: Span::new(-0.2, 1.2),
            y: Span::new(10.0, 12.0),
            rect: PixelRect::new(50.0, 20.0, 350.0, 220.0),
            target: (400, 260),
        }
    }

    #[test]
    fn pixel_mapping_round_trips_and_puts_the_origin_bottom_left() {
        let v = view();
        assert_eq!(v.to_pixel(-0.2, 10.0), (50.0, 220.0));
        assert_eq!(v.to_pixel(1.2, 12.0), (350.0, 20.0));
        let (px, py) = v.to_pixel(0.5, 11.3);
        let (x, y) = v.from_pixel(px, py);
        assert!((x - 0.5).abs() < 1e-5 && (y - 11.3).abs() < 1e-4);
    }

    #[test]
    fn clip_transform_agrees_with_the_pixel_mapping() {
        let v = view();
        let [sx, sy, ox, oy] = v.clip_transform();
        for (x, y) in [(-0.2, 10.0), (0.3, 11.0), (1.2, 12.0)] {
            let (px, py) = v.to_pixel(x, y);
            let cx = x * sx + ox;
            let cy = y * sy + oy;
            assert!((cx - (px / 400.0 * 2.0 - 1.0)).abs() < 1e-5, "{x}");
            assert!((cy - (1.0 - py / 260.0 * 2.0)).abs() < 1e-5, "{y}");
        }
        assert_eq!(v.scissor(), Some((50, 20, 300, 200)));
    }

    #[test]
    fn ticks_are_round_and_inside() {
        let t = nice_ticks(Span::new(-0.13, 1.17), 6);
        assert_eq!(t, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(tick_label(0.4, &t), "0.4");
        let t = nice_ticks(Span::new(3.0, 270.0), 5);
        assert_eq!(t, vec![50.0, 100.0, 150.0, 200.0, 250.0]);
        assert_eq!(tick_label(200.0, &t), "200");
        assert!(nice_ticks(Span::new(1.0, 1.0), 5).is_empty());
    }

    #[test]
    fn spans_pad_and_survive_a_single_value() {
        let s = Span::of([0.0, 1.0], 0.1).unwrap();
        assert!((s.lo + 0.1).abs() < 1e-6 && (s.hi - 1.1).abs() < 1e-6);
        assert_eq!(Span::of([2.0], 0.1), Some(Span::new(1.5, 2.5)));
        assert_eq!(Span::of([], 0.1), None);
    }
}
