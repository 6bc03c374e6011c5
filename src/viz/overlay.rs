//! What egui paints over the scene: tick labels and axis titles, the
//! legend, the title line of offscreen renders, and the loss curve. Shared
//! by the window and `mdn render`, so both show the same plot.

use egui::{Align2, Color32, FontId, Painter, Pos2, Rect, Stroke, pos2, vec2};

use super::colors;
use super::plot::{PlotView, Span, nice_ticks, tick_label};
use super::renderer::{x_ticks, y_ticks};
use super::scene::{Gap, SceneLayout, SceneState};
use crate::head::Metric;

pub fn color32(c: [f32; 4]) -> Color32 {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    Color32::from_rgba_unmultiplied(b(c[0]), b(c[1]), b(c[2]), b(c[3]))
}

fn text_color() -> Color32 {
    color32(colors::TEXT)
}

/// Pixels → egui points.
fn pt(ppp: f32, x: f32, y: f32) -> Pos2 {
    pos2(x / ppp, y / ppp)
}

fn plot_rect(view: &PlotView, ppp: f32) -> Rect {
    Rect::from_min_max(
        pt(ppp, view.rect.x0, view.rect.y0),
        pt(ppp, view.rect.x1, view.rect.y1),
    )
}

/// Frame, ticks and tick labels of one plot, and its axis titles.
fn paint_axes(
    p: &Painter,
    view: &PlotView,
    ppp: f32,
    x_name: &str,
    y_name: &str,
    y_ticks_: &[f32],
) {
    let rect = plot_rect(view, ppp);
    let stroke = Stroke::new(1.0, color32(colors::AXIS));
    p.rect_stroke(rect, 0.0, stroke, egui::StrokeKind::Outside);
    let font = FontId::proportional(11.0);
    let xt = x_ticks(view);
    for &x in &xt {
        let (px, _) = view.to_pixel(x, view.y.lo);
        let at = pt(ppp, px, view.rect.y1);
        p.line_segment([at, at + vec2(0.0, 4.0)], stroke);
        p.text(
            at + vec2(0.0, 6.0),
            Align2::CENTER_TOP,
            tick_label(x, &xt),
            font.clone(),
            text_color(),
        );
    }
    for &y in y_ticks_ {
        let (_, py) = view.to_pixel(view.x.lo, y);
        let at = pt(ppp, view.rect.x0, py);
        p.line_segment([at, at - vec2(4.0, 0.0)], stroke);
        p.text(
            at - vec2(6.0, 0.0),
            Align2::RIGHT_CENTER,
            tick_label(y, y_ticks_),
            font.clone(),
            text_color(),
        );
    }
    let title = FontId::proportional(13.0);
    if !x_name.is_empty() {
        p.text(
            pos2(rect.center().x, rect.bottom() + 22.0),
            Align2::CENTER_TOP,
            x_name,
            title.clone(),
            text_color(),
        );
    }
    if !y_name.is_empty() {
        // egui has no rotated text in a Painter call; a short title fits
        // above the axis instead.
        p.text(
            pos2(rect.left(), rect.top() - 3.0),
            Align2::LEFT_BOTTOM,
            y_name,
            title,
            text_color(),
        );
    }
}

/// Axes of every plot of the layout, and the legend in the main plot's
/// upper-left corner.
pub fn paint_scene(p: &Painter, scene: &SceneState, layout: &SceneLayout, ppp: f32, legend: bool) {
    let (x_name, y_name) = scene.axis_names();
    let main = &layout.main;
    paint_axes(
        p,
        main,
        ppp,
        if layout.pi.is_some() { "" } else { &x_name },
        &y_name,
        &y_ticks(main),
    );
    if let Some(pi) = &layout.pi {
        paint_axes(
            p,
            pi,
            ppp,
            &x_name,
            "\u{03c0}_k",
            &nice_ticks(Span::new(0.0, 1.0), 2),
        );
    }
    if legend {
        if let Some(note) = scene.grid_layers_note() {
            paint_note(p, main, ppp, &note);
        }
        paint_legend(p, main, ppp, &scene.legend(), scene.legend_low_right());
        if let Some(gap) = scene.gap() {
            paint_gap_meter(p, main, ppp, &gap, !scene.legend_low_right());
        }
    }
}

/// A note across the foot of the plot (why a layer is not drawn).
pub fn paint_note(p: &Painter, view: &PlotView, ppp: f32, note: &str) {
    let rect = plot_rect(view, ppp);
    let width = (rect.width() - 16.0).max(40.0);
    let galley = p.layout(
        note.to_string(),
        FontId::proportional(11.0),
        Color32::from_rgb(255, 190, 90),
        width - 12.0,
    );
    let size = galley.size() + vec2(12.0, 8.0);
    let origin = pos2(rect.min.x + 8.0, rect.max.y - 8.0 - size.y);
    p.rect_filled(
        Rect::from_min_size(origin, size),
        4.0,
        color32(colors::LEGEND_BG),
    );
    p.galley(origin + vec2(6.0, 4.0), galley, text_color());
}

/// Width and height of the gap meter's bar, in points.
pub const GAP_BAR: (f32, f32) = (150.0, 8.0);

/// Where the gap meter's bar is: in the plot's corner opposite the legend
/// (the toy problems leave both empty).
pub fn gap_bar_rect(view: &PlotView, ppp: f32, low_right: bool) -> Rect {
    let rect = plot_rect(view, ppp);
    let size = vec2(GAP_BAR.0 + 16.0, 40.0);
    let origin = if low_right {
        rect.max - size - vec2(8.0, 8.0)
    } else {
        rect.min + vec2(8.0, 8.0)
    };
    Rect::from_min_size(origin + vec2(8.0, 24.0), vec2(GAP_BAR.0, GAP_BAR.1))
}

/// The toy scenes' gap-to-optimum meter: the test loss against what a
/// perfect model scores, as text and as a bar that fills towards 1 at the
/// optimum.
pub fn paint_gap_meter(p: &Painter, view: &PlotView, ppp: f32, gap: &Gap, low_right: bool) {
    let bar = gap_bar_rect(view, ppp, low_right);
    let frame = Rect::from_min_max(bar.min - vec2(8.0, 24.0), bar.max + vec2(8.0, 8.0));
    p.rect_filled(frame, 4.0, color32(colors::LEGEND_BG));
    let text = match gap.metric {
        Metric::Nll => format!("test NLL {:.3}, optimum {:.3}", gap.test, gap.optimum),
        Metric::Mse => format!("test MSE {:.4}, floor {:.4}", gap.test, gap.optimum),
    };
    p.text(
        frame.min + vec2(8.0, 6.0),
        Align2::LEFT_TOP,
        text,
        FontId::proportional(11.0),
        text_color(),
    );
    p.rect_filled(bar, 2.0, color32(colors::GRID));
    let filled = Rect::from_min_size(bar.min, vec2(bar.width() * gap.fill(), bar.height()));
    p.rect_filled(filled, 2.0, color32(colors::GAP));
}

pub fn paint_legend(
    p: &Painter,
    view: &PlotView,
    ppp: f32,
    items: &[(&str, [f32; 4], bool)],
    low_right: bool,
) {
    if items.is_empty() {
        return;
    }
    let rect = plot_rect(view, ppp);
    let font = FontId::proportional(12.0);
    let row = 16.0;
    let width = items
        .iter()
        .map(|(label, _, _)| {
            p.layout_no_wrap(label.to_string(), font.clone(), text_color())
                .size()
                .x
        })
        .fold(0.0f32, f32::max)
        + 34.0;
    let size = vec2(width, row * items.len() as f32 + 8.0);
    let origin = if low_right {
        rect.max - size - vec2(8.0, 8.0)
    } else {
        rect.min + vec2(8.0, 8.0)
    };
    let frame = Rect::from_min_size(origin, size);
    p.rect_filled(frame, 4.0, color32(colors::LEGEND_BG));
    for (i, (label, color, line)) in items.iter().enumerate() {
        let y = origin.y + 4.0 + row * (i as f32 + 0.5);
        let swatch = pos2(origin.x + 13.0, y);
        let c = color32([color[0], color[1], color[2], 1.0]);
        if *line {
            p.line_segment(
                [swatch - vec2(8.0, 0.0), swatch + vec2(8.0, 0.0)],
                Stroke::new(2.5, c),
            );
        } else {
            p.circle_filled(swatch, 3.5, c);
        }
        p.text(
            pos2(origin.x + 27.0, y),
            Align2::LEFT_CENTER,
            *label,
            font.clone(),
            text_color(),
        );
    }
}

/// The title and the Epoch / Loss / Status line, for offscreen renders
/// (the window shows them in its HUD).
pub fn paint_caption(p: &Painter, scene: &SceneState, ppp: f32, width_px: f32) {
    let margin = 10.0;
    p.text(
        pos2(margin, 8.0),
        Align2::LEFT_TOP,
        scene.scene.title(),
        FontId::proportional(15.0),
        text_color(),
    );
    let mut stats = format!(
        "Epoch {}   {}   {}",
        scene.epoch(),
        scene.loss_text(),
        scene.status.label()
    );
    if scene.scene == super::Scene::Playground {
        stats = format!("Points {}   {stats}", scene.point_count());
    }
    p.text(
        pos2(width_px / ppp - margin, 10.0),
        Align2::RIGHT_TOP,
        stats,
        FontId::monospace(12.0),
        text_color(),
    );
}

/// A small loss-against-step curve for each net in `rect`, each scaled to
/// its own range (an MSE and an NLL share no useful common scale). Returns
/// the widest legend line's width (it must fit `rect`).
pub fn paint_loss_curve(p: &Painter, rect: Rect, scene: &SceneState) -> f32 {
    p.rect_filled(rect, 3.0, color32(colors::LEGEND_BG));
    let (first, last) = scene
        .nets()
        .flat_map(|n| n.history.iter().map(|h| h.0))
        .fold((usize::MAX, 0), |(a, b), s| (a.min(s), b.max(s)));
    if first >= last {
        p.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "loss curve",
            FontId::proportional(11.0),
            color32(colors::AXIS),
        );
        return 0.0;
    }
    let font = FontId::monospace(9.0);
    let mut widest = 0.0f32;
    for (i, n) in scene.nets().enumerate() {
        let (lo, hi) = n
            .history
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), h| {
                (a.min(h.1), b.max(h.1))
            });
        if !(lo.is_finite() && hi.is_finite()) {
            continue;
        }
        let span = (hi - lo).max(1e-6);
        let c = if n.is_mixture() {
            colors::SAMPLES
        } else {
            colors::MLP
        };
        let c = color32([c[0], c[1], c[2], 1.0]);
        let pts: Vec<Pos2> = n
            .history
            .iter()
            .map(|&(s, l)| {
                pos2(
                    rect.left() + rect.width() * (s - first) as f32 / (last - first) as f32,
                    rect.bottom() - 4.0 - (rect.height() - 8.0) * (l - lo) / span,
                )
            })
            .collect();
        p.add(egui::Shape::line(pts, Stroke::new(1.5, c)));
        // The test loss on the same scale, dashed and dimmer.
        let test: Vec<Pos2> = n
            .test_history
            .iter()
            .map(|&(s, l)| {
                pos2(
                    rect.left() + rect.width() * (s - first) as f32 / (last - first) as f32,
                    rect.bottom()
                        - 4.0
                        - (rect.height() - 8.0) * ((l - lo) / span).clamp(-0.05, 1.05),
                )
            })
            .collect();
        if test.len() > 1 {
            p.extend(egui::Shape::dashed_line(
                &test,
                Stroke::new(1.2, c.gamma_multiply(0.7)),
                4.0,
                3.0,
            ));
        }
        let shown = p.text(
            rect.right_top() + vec2(-3.0, 2.0 + 11.0 * i as f32),
            Align2::RIGHT_TOP,
            // The range, short enough for the narrowest panel.
            format!("{} {}..{}", n.loss_name(), short(hi), short(lo)),
            font.clone(),
            c,
        );
        widest = widest.max(shown.width() + 3.0);
    }
    widest
}

/// A loss in at most six characters: 0.0007, -2.41, 1.2e3.
fn short(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e3).contains(&a) {
        format!("{v:.0e}")
    } else if a < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}
