//! The window's egui HUD: scene tabs, the numbers (Epoch, Loss, Status,
//! points, fps, adapter), the controls, the loss curve, and the plot area
//! with the playground's drawing. It only describes what the user asked
//! for as [`Action`]s; the app applies them after the frame's UI pass.

use egui::{Color32, PointerButton, Sense, Ui, vec2};

use super::overlay;
use super::plot::PixelRect;
use super::presets::Preset;
use super::scene::{SceneLayout, SceneState};
use super::settings::{MAX_K, MAX_TEST_PERCENT, Scene, Settings, Status};
use super::stroke::Stroke;

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SetScene(Scene),
    TogglePlay,
    Step,
    Reset,
    Apply(Settings),
    ClearPoints,
    /// Replace the playground's points with a preset's.
    Preset(Preset),
    /// Canvas points to add (data units, jitter already applied).
    AddPoints(Vec<(f32, f32)>),
    /// Erase around (x, y) in data units, radius in units of the plot's
    /// height, with the plot's width/height ratio.
    Erase {
        x: f32,
        y: f32,
        radius: f32,
        aspect: f32,
    },
    /// The plot to a PNG (key P).
    Screenshot,
    /// The playground's points to / from `mdn-points.csv`.
    SavePoints,
    LoadPoints,
    /// Scene, settings and points to `mdn-setup.json`.
    SaveSetup,
    /// Fresh toy data: the next seed.
    NewData,
    Quit,
}

pub struct HudInput<'a> {
    pub scene: &'a SceneState,
    pub fps: f32,
    pub adapter: &'a str,
    pub steps_per_frame: f32,
    /// The user gave `--data`: the data scene has a tab.
    pub has_data: bool,
    /// The last save's or screenshot's message.
    pub notice: Option<&'a str>,
}

/// Steps one press of "Step" runs.
pub const STEP_BUTTON_STEPS: usize = 100;

/// Builds the whole window UI; returns where the plots go.
pub fn ui(
    ui: &mut Ui,
    input: &HudInput<'_>,
    settings: &mut Settings,
    rng: &mut impl FnMut() -> f32,
    stroke: &mut Stroke,
    actions: &mut Vec<Action>,
) -> HudFrame {
    let scene = input.scene;
    // Panels without a fill: the renderer's clear already paints the
    // background, and every pixel egui shades costs time on a software
    // rasteriser (the panel fills alone halved the frame rate on llvmpipe).
    let bare = egui::Frame::NONE.inner_margin(egui::Margin::symmetric(8, 4));
    egui::Panel::top("scenes").frame(bare).show(ui, |ui| {
        ui.horizontal(|ui| {
            let data_tab = input.has_data.then_some(Scene::Data);
            for (i, s) in Scene::ALL.into_iter().chain(data_tab).enumerate() {
                let label = format!("{} {}", i + 1, tab_name(s));
                if ui.selectable_label(s == scene.scene, label).clicked() && s != scene.scene {
                    actions.push(Action::SetScene(s));
                }
            }
            ui.separator();
            ui.label(egui::RichText::new(scene.scene.title()).strong());
        });
    });
    let mut panel_overflow = 0.0f32;
    ui.ctx().data_mut(|d| d.remove::<f32>(overflow_id()));
    egui::Panel::left("hud")
        .frame(bare)
        .exact_size(PANEL_WIDTH)
        .show(ui, |ui| {
            // Scrolls where the window is too short for every control
            // (900×600 with the playground's extras).
            egui::ScrollArea::vertical().show(ui, |ui| {
                side_panel(ui, input, settings, actions);
                // Content wider than the panel is cut off at its edge.
                panel_overflow = ui.min_rect().right() - ui.max_rect().right();
            });
        });
    let cut = ui.ctx().data(|d| d.get_temp::<f32>(overflow_id()));
    panel_overflow = panel_overflow.max(cut.unwrap_or(f32::NEG_INFINITY));
    let mut layout = None;
    egui::CentralPanel::no_frame().show(ui, |ui| {
        let ppp = ui.ctx().pixels_per_point();
        let rect = ui.max_rect();
        let area = PixelRect::new(
            rect.left() * ppp,
            rect.top() * ppp,
            rect.right() * ppp,
            rect.bottom() * ppp,
        );
        let screen = ui.ctx().content_rect();
        let target = (
            (screen.width() * ppp).round() as u32,
            (screen.height() * ppp).round() as u32,
        );
        let l = scene.layout(area, target, ppp);
        overlay::paint_scene(ui.painter(), scene, &l, ppp, true);
        if scene.scene == Scene::Playground {
            canvas(ui, &l, ppp, rng, stroke, actions);
        }
        layout = Some(l);
    });
    HudFrame {
        layout: layout.expect("the central panel always runs"),
        panel_overflow,
    }
}

/// The side panel's width, in points.
pub const PANEL_WIDTH: f32 = 250.0;

/// What one UI pass laid out: where the plots go, and by how many points
/// the side panel's widest row passes its edge (≤ 0: it fits).
pub struct HudFrame {
    pub layout: SceneLayout,
    pub panel_overflow: f32,
}

fn tab_name(s: Scene) -> &'static str {
    match s {
        Scene::Forward => "Forward",
        Scene::Inverse => "Inverse",
        Scene::Mdn => "MDN",
        Scene::Playground => "Playground",
        Scene::Data => "Your data",
    }
}

fn row(ui: &mut Ui, name: &str, value: impl Into<egui::WidgetText>) {
    let value: egui::WidgetText = value.into();
    // What the row would need unwrapped: a label that does not fit is cut
    // off ("…"), which the panel's size check must see.
    let galley = value.clone().into_galley(
        ui,
        Some(egui::TextWrapMode::Extend),
        f32::INFINITY,
        egui::TextStyle::Body,
    );
    let needed = LABEL_WIDTH + ui.spacing().item_spacing.x + galley.size().x;
    note_overflow(ui, needed - ui.available_width());
    ui.horizontal(|ui| {
        ui.add_sized(
            vec2(LABEL_WIDTH, 16.0),
            egui::Label::new(egui::RichText::new(name).weak()),
        );
        ui.label(value);
    });
}

/// A row whose value may be long (an adapter's name): the value wraps
/// under the name instead of running past the panel.
fn long_row(ui: &mut Ui, name: &str, value: &str) {
    ui.add(egui::Label::new(egui::RichText::new(name).weak()));
    ui.indent(name, |ui| {
        ui.add(egui::Label::new(egui::RichText::new(value).small()).wrap());
    });
}

/// Width of the HUD rows' name column, in points.
const LABEL_WIDTH: f32 = 70.0;

fn overflow_id() -> egui::Id {
    egui::Id::unique("mdn hud overflow")
}

/// Records that something in this pass needs `by` more points than the
/// panel has (the largest of the pass is kept).
pub(super) fn note_overflow(ui: &Ui, by: f32) {
    ui.ctx().data_mut(|d| {
        let worst = d.get_temp_mut_or(overflow_id(), f32::NEG_INFINITY);
        *worst = worst.max(by);
    });
}

fn side_panel(
    ui: &mut Ui,
    input: &HudInput<'_>,
    settings: &mut Settings,
    actions: &mut Vec<Action>,
) {
    let scene = input.scene;
    ui.add_space(6.0);
    row(
        ui,
        "Epoch",
        egui::RichText::new(scene.epoch().to_string()).monospace(),
    );
    // One row per net: both losses on one line overflowed the panel.
    if scene.nets().next().is_none() {
        row(ui, "Loss", egui::RichText::new("-").monospace());
    }
    for net in scene.nets() {
        let value = net.loss.map_or("-".to_string(), |l| format!("{l:.4}"));
        row(
            ui,
            &format!("Loss {}", net.loss_name()),
            egui::RichText::new(value).monospace(),
        );
        if let Some(t) = net.test_loss() {
            row(
                ui,
                &format!("Test {}", net.loss_name()),
                egui::RichText::new(format!("{t:.4}")).monospace(),
            );
        }
    }
    if let Some(gap) = scene.gap() {
        ui.horizontal(|ui| {
            ui.add_sized(
                vec2(70.0, 16.0),
                egui::Label::new(egui::RichText::new("Gap").weak()),
            )
            .on_hover_text(format!(
                "Test {} against the optimum of Bishop's problem ({:.4}): what a perfect model scores on fresh data",
                gap.metric.name().to_uppercase(),
                gap.optimum
            ));
            ui.add(
                egui::ProgressBar::new(gap.fill())
                    .desired_width(90.0)
                    .fill(overlay::color32(super::colors::GAP))
                    .text(format!("{:.4}", gap.gap())),
            );
        });
    }
    let status_color = match scene.status {
        Status::Training => Color32::from_rgb(120, 200, 255),
        Status::Converged => Color32::from_rgb(110, 220, 130),
        Status::Diverged => Color32::from_rgb(255, 110, 110),
        Status::Ready | Status::DrawPoints => Color32::from_gray(220),
    };
    row(
        ui,
        "Status",
        egui::RichText::new(scene.status.label())
            .color(status_color)
            .strong(),
    );
    row(ui, "Points", scene.point_count().to_string());
    row(
        ui,
        "fps",
        format!(
            "{:.0}   ({:.1} steps/frame)",
            input.fps, input.steps_per_frame
        ),
    );
    long_row(ui, "Adapter", input.adapter);
    if let Some(device) = scene.trainer_device() {
        long_row(ui, "Training on", &device);
    }
    ui.separator();

    ui.horizontal(|ui| {
        let play = if scene.playing { "Pause" } else { "Play" };
        if ui.button(play).on_hover_text("Space").clicked() {
            actions.push(Action::TogglePlay);
        }
        if ui
            .button("Step")
            .on_hover_text(format!("{STEP_BUTTON_STEPS} steps"))
            .clicked()
        {
            actions.push(Action::Step);
        }
        if ui.button("Reset").on_hover_text("R").clicked() {
            actions.push(Action::Reset);
        }
        if scene.toy_problem().is_some()
            && ui
                .button("New data")
                .on_hover_text(format!("Fresh toy data: seed {}", settings.seed + 1))
                .clicked()
        {
            actions.push(Action::NewData);
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Screenshot").on_hover_text("P").clicked() {
            actions.push(Action::Screenshot);
        }
        if ui
            .button("Save setup")
            .on_hover_text("Scene, settings and points to mdn-setup.json; open it with --setup")
            .clicked()
        {
            actions.push(Action::SaveSetup);
        }
    });
    if let Some(text) = input.notice {
        ui.label(
            egui::RichText::new(text)
                .small()
                .color(Color32::from_rgb(150, 220, 160)),
        );
    }
    ui.add_space(4.0);
    let before = settings.clone();
    let mut commit = false;
    if scene.scene.has_mdn() {
        let r = ui.add(egui::Slider::new(&mut settings.k, 1..=MAX_K).text("K"));
        commit |= settled(&r);
    }
    let r = ui.add(
        egui::Slider::new(&mut settings.lr, 1e-4..=5e-2)
            .logarithmic(true)
            .text("lr"),
    );
    commit |= settled(&r);
    if scene.scene.has_mdn() {
        let r = ui.add(
            egui::Slider::new(&mut settings.samples, 100..=50_000)
                .logarithmic(true)
                .text("samples"),
        );
        commit |= settled(&r);
        let r = ui
            .add(
                egui::Slider::new(&mut settings.temperature, 0.1..=3.0)
                    .logarithmic(true)
                    .text("temperature"),
            )
            .on_hover_text("Sampling: σ × T; π sharper below 1, flatter above");
        commit |= settled(&r);
        ui.separator();
        ui.label(egui::RichText::new("Layers").weak());
        let l = &mut settings.layers;
        commit |= ui.checkbox(&mut l.samples, "samples").changed();
        // Curves over an x grid say nothing true of a model with more
        // inputs or targets than the two plotted: off, with the reason.
        let note = scene.grid_layers_note();
        ui.add_enabled_ui(note.is_none(), |ui| {
            commit |= ui
                .checkbox(&mut l.density, "density p(t|x) heatmap")
                .changed();
            commit |= ui.checkbox(&mut l.means, "component means μ_k").changed();
            commit |= ui.checkbox(&mut l.pi_panel, "π_k panel").changed();
            commit |= ui.checkbox(&mut l.mean, "MDN mean E[t|x]").changed();
            commit |= ui.checkbox(&mut l.mode, "MDN mode").changed();
        });
        if let Some(note) = note {
            ui.label(
                egui::RichText::new(note)
                    .small()
                    .color(Color32::from_rgb(255, 190, 90)),
            );
        }
        commit |= ui
            .checkbox(&mut l.components, "colour by component")
            .on_hover_text("Data: the component most responsible for each point; samples: the component each came from")
            .changed();
    }
    if matches!(scene.scene, Scene::Playground | Scene::Data) && scene.model().is_none() {
        let mut pct = scene.test_percent();
        let r = ui
            .add(egui::Slider::new(&mut pct, 0..=MAX_TEST_PERCENT).text("test %"))
            .on_hover_text("Points held out: the dashed loss curves, never trained on");
        if settled(&r) && pct != scene.test_percent() {
            settings.test_percent = Some(pct);
            commit = true;
        }
    }
    commit |= ui.checkbox(&mut settings.layers.data, "data").changed();
    if commit && *settings != before {
        actions.push(Action::Apply(settings.clone()));
    }
    if scene.scene == Scene::Playground {
        ui.separator();
        ui.label(egui::RichText::new("Left-drag: add points · right-drag: erase").weak());
        ui.horizontal(|ui| {
            if ui.button("Clear points").clicked() {
                actions.push(Action::ClearPoints);
            }
            if ui
                .button("Save")
                .on_hover_text("The points to mdn-points.csv")
                .clicked()
            {
                actions.push(Action::SavePoints);
            }
            if ui
                .button("Load")
                .on_hover_text("The points from mdn-points.csv")
                .clicked()
            {
                actions.push(Action::LoadPoints);
            }
        });
        ui.horizontal(|ui| {
            egui::ComboBox::from_id_salt("preset")
                .selected_text("Presets")
                .show_ui(ui, |ui| {
                    for p in Preset::ALL {
                        if ui.selectable_label(false, p.label()).clicked() {
                            actions.push(Action::Preset(p));
                        }
                    }
                });
        });
    }
    ui.separator();
    ui.label(egui::RichText::new("Loss").weak());
    let (rect, _) = ui.allocate_exact_size(vec2(ui.available_width(), 90.0), Sense::hover());
    let legend = overlay::paint_loss_curve(ui.painter(), rect, scene);
    note_overflow(ui, legend - rect.width());
    ui.add_space(6.0);
    ui.label(
        egui::RichText::new("Space play/pause · R reset · P screenshot · 1–4 scenes · Esc quit")
            .small()
            .weak(),
    );
    if let Some(mdn) = &scene.mdn
        && !mdn.dead_components.is_empty()
    {
        ui.colored_label(
            Color32::from_rgb(255, 190, 90),
            format!(
                "{} of {} components are dead (mean π < 1e-3): they add nothing; a smaller K fits the same.",
                mdn.dead_components.len(),
                mdn.spec.k()
            ),
        );
    }
    if scene.status == Status::Diverged {
        ui.colored_label(
            Color32::from_rgb(255, 140, 140),
            "The loss became non-finite; the last good parameters were kept. Lower the learning rate.",
        );
    }
}

/// A slider's value is applied once the user lets go (rebuilding a trainer
/// on every drag event would read the parameters back each frame).
fn settled(r: &egui::Response) -> bool {
    r.drag_stopped() || (r.changed() && !r.dragged())
}

/// The playground: left-drag draws a stroke of points (see [`Stroke`]),
/// right-drag erases.
fn canvas(
    ui: &mut Ui,
    layout: &SceneLayout,
    ppp: f32,
    rng: &mut impl FnMut() -> f32,
    stroke: &mut Stroke,
    actions: &mut Vec<Action>,
) {
    let v = &layout.main;
    let rect = egui::Rect::from_min_max(
        egui::pos2(v.rect.x0 / ppp, v.rect.y0 / ppp),
        egui::pos2(v.rect.x1 / ppp, v.rect.y1 / ppp),
    );
    let resp = ui.allocate_rect(rect, Sense::click_and_drag());
    let Some(pos) = resp.interact_pointer_pos().or(resp.hover_pos()) else {
        stroke.lift();
        return;
    };
    let (x, y) = v.from_pixel(pos.x * ppp, pos.y * ppp);
    let (primary, secondary) = ui.input(|i| {
        (
            i.pointer.button_down(PointerButton::Primary),
            i.pointer.button_down(PointerButton::Secondary),
        )
    });
    let active = resp.is_pointer_button_down_on() || resp.dragged();
    if active && primary {
        let pts = stroke.extend(x, y, rng);
        if !pts.is_empty() {
            actions.push(Action::AddPoints(pts));
        }
        return;
    }
    stroke.lift();
    if active && secondary {
        actions.push(Action::Erase {
            x,
            y,
            radius: 0.04,
            aspect: v.rect.width() / v.rect.height(),
        });
    }
    if secondary && resp.hovered() {
        ui.painter().circle_stroke(
            pos,
            0.04 * rect.height(),
            egui::Stroke::new(1.0, Color32::from_gray(180)),
        );
    }
}
