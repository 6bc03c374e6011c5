//! Calibration figure for a mixture density model: PIT histogram (left) and
//! interval-coverage reliability curve (right), rendered to PNG.
//!
//! Drawing uses `plotters` (bitmap backend only, no system font libraries):
//! text goes through plotters' `ab_glyph` feature with the Ubuntu-Light TTF
//! embedded in `epaint_default_fonts`. PNG encoding uses the `image` crate.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;

use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What the figure shows; the caller fills it from its evaluation.
pub struct CalibrationFigure<'a> {
    /// Counts of the probability integral transform values in equal bins over [0, 1] (e.g. 20 bins).
    pub pit_histogram: &'a [usize],
    /// (nominal q, empirical share of targets inside the central q interval), q increasing in (0, 1).
    pub coverage_curve: &'a [(f64, f64)],
    /// Kolmogorov–Smirnov distance of the PIT values from uniform, printed in the left title.
    pub pit_ks: f64,
    /// Rows evaluated, printed in the figure.
    pub rows: usize,
    /// A short title line, e.g. the model and data file names.
    pub title: &'a str,
}

/// Font family name under which the embedded font is registered with plotters.
const FONT: &str = "sans-serif";

const MIN_WIDTH: u32 = 320;
const MIN_HEIGHT: u32 = 200;
const MAX_SIDE: u32 = 16_384;

/// Fill colour of the PIT histogram bars.
const BAR: RGBColor = RGBColor(76, 120, 168);
/// Reference line "uniform density = 1" in the PIT panel.
const REF_LINE: RGBColor = RGBColor(190, 40, 40);
/// Model reliability curve and its markers.
const CURVE: RGBColor = RGBColor(221, 110, 15);
/// Ideal diagonal y = x.
const DIAGONAL: RGBColor = RGBColor(140, 140, 140);
/// Text and axes.
const INK: RGBColor = RGBColor(30, 30, 30);
const GRID: RGBColor = RGBColor(232, 232, 232);

/// Where things ended up in the picture (pixel coordinates); used by the tests.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))]
struct Layout {
    /// Height of the title band at the top of the figure.
    title_band: u32,
    /// PIT panel: pixel of data (0, 0) and of data (1, y_max).
    pit_origin: (i32, i32),
    pit_corner: (i32, i32),
    pit_y_max: f64,
    /// Coverage panel: pixel of data (0, 0) and of data (1, 1).
    cov_origin: (i32, i32),
    cov_corner: (i32, i32),
}

/// Render the calibration figure and write it to `path` as a PNG image.
pub fn render_png(
    fig: &CalibrationFigure,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), String> {
    let buf = render_rgb(fig, width, height)?;
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &buf,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| format!("cannot encode the calibration plot: {e}"))?;
    // Whole or not at all, like every output of mdn.
    crate::fsutil::write_atomic(path, &png)
        .map_err(|e| format!("cannot write calibration plot to {}: {e}", path.display()))
}

/// Same figure into an RGB buffer (row-major, 3 bytes per pixel), for tests.
pub fn render_rgb(fig: &CalibrationFigure, width: u32, height: u32) -> Result<Vec<u8>, String> {
    render_with_layout(fig, width, height).map(|(buf, _)| buf)
}

fn render_with_layout(
    fig: &CalibrationFigure,
    width: u32,
    height: u32,
) -> Result<(Vec<u8>, Layout), String> {
    validate(fig, width, height)?;
    register_font()?;
    let len = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| format!("calibration plot: image size {width}x{height} is too large"))?;
    let mut buf = vec![255u8; len];
    // plotters should not panic on validated input, but a plot is never worth
    // aborting an evaluation for: turn any panic into an error.
    let layout = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        draw(fig, &mut buf, width, height)
    }))
    .map_err(|_| "calibration plot: drawing failed unexpectedly (panic in plotters)".to_string())?
    .map_err(|e| format!("calibration plot: drawing failed: {e}"))?;
    Ok((buf, layout))
}

fn validate(fig: &CalibrationFigure, width: u32, height: u32) -> Result<(), String> {
    if fig.pit_histogram.is_empty() {
        return Err("calibration plot: the PIT histogram has no bins".into());
    }
    if fig.pit_histogram.iter().all(|&c| c == 0) {
        return Err("calibration plot: the PIT histogram is empty (all bins are zero)".into());
    }
    if fig.rows == 0 {
        return Err("calibration plot: zero rows were evaluated".into());
    }
    if !(MIN_WIDTH..=MAX_SIDE).contains(&width) || !(MIN_HEIGHT..=MAX_SIDE).contains(&height) {
        return Err(format!(
            "calibration plot: image size {width}x{height} is outside \
             {MIN_WIDTH}..={MAX_SIDE} x {MIN_HEIGHT}..={MAX_SIDE} pixels"
        ));
    }
    for &(q, c) in fig.coverage_curve {
        let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !ok(q) || !ok(c) {
            return Err(format!(
                "calibration plot: coverage point ({q}, {c}) is not inside [0, 1] x [0, 1]"
            ));
        }
    }
    Ok(())
}

/// Register the embedded font (Ubuntu-Light from `epaint_default_fonts`) with
/// plotters as "sans-serif", once per process. `render_*` call this
/// themselves; it is public because enabling plotters' `ab_glyph` feature
/// applies to every user of plotters in the build (e.g. criterion's plotters
/// report backend), and those find no font unless it has been registered.
pub fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(
                FONT,
                FontStyle::Normal,
                epaint_default_fonts::UBUNTU_LIGHT,
            )
            .map_err(|_| "calibration plot: the embedded font could not be loaded".to_string())
        })
        .clone()
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn draw(fig: &CalibrationFigure, buf: &mut [u8], width: u32, height: u32) -> DrawResult<Layout> {
    let root = BitMapBackend::with_buffer(buf, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;

    // Sizes scale gently with the image; tuned for 900x400.
    let unit = (height as f64 / 400.0).min(width as f64 / 900.0).max(0.6);
    let px = |v: f64| (v * unit).round().max(1.0) as u32;
    let title_band = px(34.0);

    let (top, body) = root.split_vertically(title_band);
    let heading_style = TextStyle::from((FONT, px(17.0) as f64).into_font())
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let heading = heading_text(fig, |s| {
        top.estimate_text_size(s, &heading_style)
            .map(|(w, _)| w + px(20.0) <= width)
            .unwrap_or(true)
    });
    top.draw_text(
        &heading,
        &heading_style,
        (width as i32 / 2, title_band as i32 / 2 + 1),
    )?;

    let (left, right) = body.split_horizontally(width / 2);
    let (pit_origin, pit_corner, pit_y_max) = draw_pit(fig, &left, &px)?;
    let (cov_origin, cov_corner) = draw_coverage(fig, &right, &px)?;
    root.present()?;
    Ok(Layout {
        title_band,
        pit_origin,
        pit_corner,
        pit_y_max,
        cov_origin,
        cov_corner,
    })
}

/// "<title>  —  N rows evaluated"; the title (never the row count) is
/// shortened with an ellipsis until `fits` accepts the line.
fn heading_text(fig: &CalibrationFigure, fits: impl Fn(&str) -> bool) -> String {
    let title: String = fig
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let rows = format!("{} rows evaluated", group_thousands(fig.rows));
    let mut chars: Vec<char> = title.trim().chars().collect();
    let mut shortened = false;
    loop {
        if chars.is_empty() {
            return rows;
        }
        let head: String = chars.iter().collect();
        let line = if shortened {
            format!("{}\u{2026}  \u{2014}  {rows}", head.trim_end())
        } else {
            format!("{head}  \u{2014}  {rows}")
        };
        if fits(&line) {
            return line;
        }
        chars.pop();
        shortened = true;
    }
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

type Pixel = (i32, i32);

fn draw_pit<DB: DrawingBackend>(
    fig: &CalibrationFigure,
    area: &DrawingArea<DB, Shift>,
    px: &dyn Fn(f64) -> u32,
) -> DrawResult<(Pixel, Pixel, f64)>
where
    DB::ErrorType: 'static,
{
    let bins = fig.pit_histogram.len();
    let total: f64 = fig.pit_histogram.iter().map(|&c| c as f64).sum();
    let density: Vec<f64> = fig
        .pit_histogram
        .iter()
        .map(|&c| c as f64 * bins as f64 / total)
        .collect();
    let max_density = density.iter().cloned().fold(0.0, f64::max);
    let y_max = nice_ceiling((max_density * 1.08).max(1.25));

    let ks = if fig.pit_ks.is_finite() {
        format!("KS {:.3}", fig.pit_ks)
    } else {
        "KS n/a".to_string()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("PIT histogram ({ks})"),
            (FONT, px(16.0) as f64).into_font().color(&INK),
        )
        .margin_left(px(8.0))
        .margin_right(px(22.0))
        .margin_bottom(px(6.0))
        .x_label_area_size(px(44.0))
        .y_label_area_size(px(54.0))
        .build_cartesian_2d(0f64..1f64, 0f64..y_max)?;

    let label_font = (FONT, px(13.0) as f64).into_font().color(&INK);
    let desc_font = (FONT, px(14.0) as f64).into_font().color(&INK);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .max_light_lines(0)
        .axis_style(INK)
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| trim_number(*v))
        .label_style(label_font)
        .axis_desc_style(desc_font)
        .x_desc("PIT value")
        .y_desc("density")
        .draw()?;

    let width = 1.0 / bins as f64;
    let gap = if area.dim_in_pixel().0 as usize / bins >= 8 {
        1
    } else {
        0
    };
    chart.draw_series(density.iter().enumerate().map(|(i, &d)| {
        let x0 = i as f64 * width;
        let mut bar = Rectangle::new([(x0, 0.0), (x0 + width, d)], BAR.filled());
        bar.set_margin(0, 0, gap, gap);
        bar
    }))?;
    chart.draw_series(LineSeries::new(
        [(0.0, 1.0), (1.0, 1.0)],
        REF_LINE.stroke_width(px(2.0)),
    ))?;

    let plot = chart.plotting_area();
    Ok((
        plot.map_coordinate(&(0.0, 0.0)),
        plot.map_coordinate(&(1.0, y_max)),
        y_max,
    ))
}

fn draw_coverage<DB: DrawingBackend>(
    fig: &CalibrationFigure,
    area: &DrawingArea<DB, Shift>,
    px: &dyn Fn(f64) -> u32,
) -> DrawResult<(Pixel, Pixel)>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Interval coverage",
            (FONT, px(16.0) as f64).into_font().color(&INK),
        )
        .margin_left(px(8.0))
        .margin_right(px(22.0))
        .margin_bottom(px(6.0))
        .x_label_area_size(px(44.0))
        .y_label_area_size(px(54.0))
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;

    let label_font = (FONT, px(13.0) as f64).into_font().color(&INK);
    let desc_font = (FONT, px(14.0) as f64).into_font().color(&INK);
    chart
        .configure_mesh()
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .max_light_lines(0)
        .axis_style(INK)
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(label_font)
        .axis_desc_style(desc_font)
        .x_desc("nominal central interval")
        .y_desc("observed coverage")
        .draw()?;

    let dash = px(6.0);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            dash,
            dash,
            DIAGONAL.stroke_width(px(2.0)),
        ))?
        .label("ideal (y = x)")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], DIAGONAL.stroke_width(2))
        });

    let curve = chart.draw_series(
        LineSeries::new(
            fig.coverage_curve.iter().copied(),
            CURVE.filled().stroke_width(px(2.0)),
        )
        .point_size(px(3.5)),
    )?;
    curve
        .label("model")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], CURVE.stroke_width(2)));

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(px(8.0))
        .label_font((FONT, px(13.0) as f64).into_font().color(&INK))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;

    if fig.coverage_curve.is_empty() {
        let plot = chart.plotting_area();
        plot.draw(&Text::new(
            "no coverage data",
            (0.55, 0.2),
            (FONT, px(14.0) as f64).into_font().color(&INK),
        ))?;
    }

    let plot = chart.plotting_area();
    Ok((
        plot.map_coordinate(&(0.0, 0.0)),
        plot.map_coordinate(&(1.0, 1.0)),
    ))
}

/// Round an axis maximum up to 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k.
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * base >= v * (1.0 - 1e-9) {
            return m * base;
        }
    }
    10.0 * base
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 900;
    const H: u32 = 400;

    fn flat() -> Vec<usize> {
        vec![500; 20]
    }

    fn u_shaped() -> Vec<usize> {
        (0..20)
            .map(|i| {
                let x = (i as f64 + 0.5) / 20.0 - 0.5;
                (100.0 + 4000.0 * x * x) as usize
            })
            .collect()
    }

    fn diagonal() -> Vec<(f64, f64)> {
        (1..=19).map(|i| i as f64 / 20.0).map(|q| (q, q)).collect()
    }

    /// Overconfident model: intervals far too narrow.
    fn under_covered() -> Vec<(f64, f64)> {
        (1..=19)
            .map(|i| i as f64 / 20.0)
            .map(|q| (q, q.powi(3)))
            .collect()
    }

    fn figure<'a>(hist: &'a [usize], cov: &'a [(f64, f64)], ks: f64) -> CalibrationFigure<'a> {
        CalibrationFigure {
            pit_histogram: hist,
            coverage_curve: cov,
            pit_ks: ks,
            rows: 10_000,
            title: "model.safetensors on data/test.csv",
        }
    }

    fn pixel(buf: &[u8], x: i32, y: i32) -> [u8; 3] {
        let i = (y as usize * W as usize + x as usize) * 3;
        [buf[i], buf[i + 1], buf[i + 2]]
    }

    fn is(c: [u8; 3], rgb: RGBColor) -> bool {
        c == [rgb.0, rgb.1, rgb.2]
    }

    /// Height in pixels of bar-coloured pixels in column x of the PIT panel.
    fn bar_pixels_in_column(buf: &[u8], l: &Layout, x: i32) -> i32 {
        (l.pit_corner.1..=l.pit_origin.1)
            .filter(|&y| is(pixel(buf, x, y), BAR))
            .count() as i32
    }

    /// Measured bar height (bar-coloured pixels + the reference line that may
    /// cross it) at the centre of every bin, and the expected height.
    fn bar_heights(buf: &[u8], l: &Layout, hist: &[usize]) -> Vec<(i32, f64)> {
        let n = hist.len();
        let total: f64 = hist.iter().map(|&c| c as f64).sum();
        let plot_w = (l.pit_corner.0 - l.pit_origin.0) as f64;
        let plot_h = (l.pit_origin.1 - l.pit_corner.1) as f64;
        (0..n)
            .map(|i| {
                let x = l.pit_origin.0 + (plot_w * (i as f64 + 0.5) / n as f64) as i32;
                let density = hist[i] as f64 * n as f64 / total;
                let covered_by_ref = (l.pit_corner.1..=l.pit_origin.1)
                    .filter(|&y| is(pixel(buf, x, y), REF_LINE))
                    .count() as i32;
                let measured = bar_pixels_in_column(buf, l, x)
                    + if density >= 1.0 { covered_by_ref } else { 0 };
                (measured, density / l.pit_y_max * plot_h)
            })
            .collect()
    }

    /// Curve-coloured pixels inside the coverage plot, split by whether they
    /// lie clearly below, near, or clearly above the diagonal.
    fn curve_vs_diagonal(buf: &[u8], l: &Layout) -> (usize, usize, usize) {
        let (x0, y0) = l.cov_origin;
        let (x1, y1) = l.cov_corner;
        let (mut below, mut near, mut above) = (0, 0, 0);
        for y in y1..=y0 {
            for x in x0..=x1 {
                if !is(pixel(buf, x, y), CURVE) {
                    continue;
                }
                let q = (x - x0) as f64 / (x1 - x0) as f64;
                let c = (y0 - y) as f64 / (y0 - y1) as f64;
                if c < q - 0.05 {
                    below += 1;
                } else if c > q + 0.05 {
                    above += 1;
                } else {
                    near += 1;
                }
            }
        }
        (below, near, above)
    }

    fn dark_pixels_in_band(buf: &[u8], band: u32) -> usize {
        (0..band as i32)
            .flat_map(|y| (0..W as i32).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let [r, g, b] = pixel(buf, x, y);
                (r as u32 + g as u32 + b as u32) < 3 * 110
            })
            .count()
    }

    #[test]
    fn calibrated_figure_has_flat_bars_and_diagonal_curve() {
        let (hist, cov) = (flat(), diagonal());
        let (buf, l) = render_with_layout(&figure(&hist, &cov, 0.004), W, H).unwrap();
        assert_eq!(buf.len(), (W * H * 3) as usize);

        let heights = bar_heights(&buf, &l, &hist);
        for (i, &(measured, expected)) in heights.iter().enumerate() {
            assert!(
                (measured as f64 - expected).abs() <= 3.0,
                "bin {i}: bar is {measured} px high, expected {expected:.1}"
            );
        }
        assert!(heights[0].0 > 50, "bars must be visible: {heights:?}");

        let (below, near, above) = curve_vs_diagonal(&buf, &l);
        assert!(near > 200, "curve pixels near diagonal: {near}");
        // The legend swatch (upper left) is the only curve colour off the diagonal.
        assert!(below < 20, "calibrated curve below diagonal: {below}");
        assert!(above < 80, "calibrated curve above diagonal: {above}");

        assert!(
            dark_pixels_in_band(&buf, l.title_band) > 100,
            "no title text"
        );
    }

    #[test]
    fn miscalibrated_figure_shows_u_shape_and_under_coverage() {
        let (hist, cov) = (u_shaped(), under_covered());
        let (buf, l) = render_with_layout(&figure(&hist, &cov, 0.21), W, H).unwrap();

        let heights = bar_heights(&buf, &l, &hist);
        for (i, &(measured, expected)) in heights.iter().enumerate() {
            assert!(
                (measured as f64 - expected).abs() <= 3.0,
                "bin {i}: bar is {measured} px high, expected {expected:.1}"
            );
        }
        let edges = heights[0].0 + heights[19].0;
        let middle = heights[9].0 + heights[10].0;
        assert!(edges > 3 * middle, "U shape not drawn: {heights:?}");

        // Whole-panel check too: more bar pixels in the outer fifths than the centre.
        let plot_w = l.pit_corner.0 - l.pit_origin.0;
        let sum_cols = |from: f64, to: f64| -> i32 {
            let a = l.pit_origin.0 + (plot_w as f64 * from) as i32;
            let b = l.pit_origin.0 + (plot_w as f64 * to) as i32;
            (a..b).map(|x| bar_pixels_in_column(&buf, &l, x)).sum()
        };
        let outer = sum_cols(0.0, 0.2) + sum_cols(0.8, 1.0);
        let centre = sum_cols(0.3, 0.7);
        assert!(outer > 2 * centre, "outer {outer} vs centre {centre}");

        let (below, near, above) = curve_vs_diagonal(&buf, &l);
        assert!(
            below > 300,
            "under-covering curve should lie below: {below}"
        );
        assert!(
            below > 5 * (near + above),
            "below {below} near {near} above {above}"
        );

        assert!(
            dark_pixels_in_band(&buf, l.title_band) > 100,
            "no title text"
        );
    }

    #[test]
    fn figures_differ() {
        let (h1, c1) = (flat(), diagonal());
        let (h2, c2) = (u_shaped(), under_covered());
        let a = render_rgb(&figure(&h1, &c1, 0.004), W, H).unwrap();
        let b = render_rgb(&figure(&h2, &c2, 0.21), W, H).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn axis_labels_and_panel_titles_are_drawn() {
        let (hist, cov) = (flat(), diagonal());
        let (buf, l) = render_with_layout(&figure(&hist, &cov, 0.004), W, H).unwrap();
        let dark = |x: i32, y: i32| {
            let [r, g, b] = pixel(&buf, x, y);
            (r as u32 + g as u32 + b as u32) < 3 * 110
        };
        let count = |xs: std::ops::Range<i32>, ys: std::ops::Range<i32>| {
            ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
                .filter(|&(x, y)| dark(x, y))
                .count()
        };
        let t = l.title_band as i32;
        // Panel captions between the title band and the plot tops.
        assert!(count(0..W as i32 / 2, t..l.pit_corner.1 - 2) > 50);
        assert!(count(W as i32 / 2..W as i32, t..l.cov_corner.1 - 2) > 50);
        // x-axis descriptions below the tick labels.
        assert!(count(0..W as i32 / 2, l.pit_origin.1 + 22..H as i32) > 50);
        assert!(count(W as i32 / 2..W as i32, l.cov_origin.1 + 22..H as i32) > 50);
        // y-axis descriptions left of the tick labels.
        assert!(count(0..l.pit_origin.0 - 35, t..H as i32) > 50);
        assert!(count(W as i32 / 2..l.cov_origin.0 - 35, t..H as i32) > 50);
    }

    #[test]
    fn png_round_trip_and_unwritable_path() {
        let dir = std::env::temp_dir().join(format!("calplot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fig.png");
        let (hist, cov) = (u_shaped(), under_covered());
        let fig = figure(&hist, &cov, 0.21);
        render_png(&fig, &path, 640, 300).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (640, 300));
        assert_eq!(img.into_raw(), render_rgb(&fig, 640, 300).unwrap());

        let bad = dir.join("no-such-dir").join("fig.png");
        let err = render_png(&fig, &bad, 640, 300).unwrap_err();
        assert!(err.contains("cannot write"), "{err}");
        assert!(err.contains("no-such-dir"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn invalid_input_is_an_error() {
        let cov = diagonal();
        let hist = flat();
        let empty: [usize; 0] = [];
        let err = render_rgb(&figure(&empty, &cov, 0.0), W, H).unwrap_err();
        assert!(err.contains("no bins"), "{err}");
        let zeros = [0usize; 20];
        let err = render_rgb(&figure(&zeros, &cov, 0.0), W, H).unwrap_err();
        assert!(err.contains("empty"), "{err}");

        let mut fig = figure(&hist, &cov, 0.0);
        fig.rows = 0;
        let err = render_rgb(&fig, W, H).unwrap_err();
        assert!(err.contains("zero rows"), "{err}");

        let fig = figure(&hist, &cov, 0.0);
        assert!(render_rgb(&fig, 0, 0).is_err());
        assert!(render_rgb(&fig, 100, 50).is_err());

        let nan = [(0.5, f64::NAN)];
        assert!(render_rgb(&figure(&hist, &nan, 0.0), W, H).is_err());
        let out = [(0.5, 1.5)];
        assert!(render_rgb(&figure(&hist, &out, 0.0), W, H).is_err());
    }

    #[test]
    fn odd_but_valid_input_renders() {
        // No coverage points, NaN KS, one bin, long title, odd sizes.
        let hist = [7usize];
        let long = "x".repeat(500);
        let fig = CalibrationFigure {
            pit_histogram: &hist,
            coverage_curve: &[],
            pit_ks: f64::NAN,
            rows: 1,
            title: &long,
        };
        for (w, h) in [(320, 200), (1800, 800), (901, 401)] {
            let buf = render_rgb(&fig, w, h).unwrap();
            assert_eq!(buf.len(), (w * h * 3) as usize);
        }
        let many = vec![3usize; 1000];
        let fig = CalibrationFigure {
            pit_histogram: &many,
            ..fig
        };
        render_rgb(&fig, 900, 400).unwrap();
    }

    #[test]
    fn helpers() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(nice_ceiling(1.25), 1.25);
        assert_eq!(nice_ceiling(1.3), 1.5);
        assert_eq!(nice_ceiling(3.7), 4.0);
        assert_eq!(nice_ceiling(11.0), 12.5);
        assert_eq!(trim_number(1.0), "1");
        assert_eq!(trim_number(0.25), "0.25");
        assert_eq!(trim_number(0.5), "0.5");

        let hist = flat();
        let mut fig = figure(&hist, &[], 0.0);
        fig.rows = 12345;
        fig.title = "model.safetensors on data/test.csv";
        let full = heading_text(&fig, |_| true);
        assert_eq!(
            full,
            "model.safetensors on data/test.csv  \u{2014}  12,345 rows evaluated"
        );
        // A title that does not fit is shortened; the row count always stays.
        let short = heading_text(&fig, |s| s.chars().count() <= 40);
        assert!(short.chars().count() <= 40, "{short}");
        assert!(short.starts_with("model.safe"), "{short}");
        assert!(short.contains('\u{2026}'), "{short}");
        assert!(short.ends_with("12,345 rows evaluated"), "{short}");
        assert_eq!(heading_text(&fig, |_| false), "12,345 rows evaluated");
        fig.title = "  ";
        assert_eq!(heading_text(&fig, |_| true), "12,345 rows evaluated");
    }

    /// Writes example_ok.png / example_bad.png into the crate directory when
    /// CALPLOT_EXAMPLES is set; otherwise does nothing.
    #[test]
    fn write_examples() {
        if std::env::var_os("CALPLOT_EXAMPLES").is_none() {
            return;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (h1, c1) = (flat(), diagonal());
        let (h2, c2) = (u_shaped(), under_covered());
        render_png(&figure(&h1, &c1, 0.004), &dir.join("example_ok.png"), W, H).unwrap();
        render_png(&figure(&h2, &c2, 0.21), &dir.join("example_bad.png"), W, H).unwrap();
    }
}
