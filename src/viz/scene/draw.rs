//! What a scene draws each frame: the plot layout, the renderer's draw
//! lists, the legend and the loss line.

use super::{SampleInputs, SceneLayout, SceneState};
use crate::viz::colors;
use crate::viz::plot::{PixelRect, PlotView, Span};
use crate::viz::renderer::{
    Draw, FIELD_PI, FIELD_Y, OPAQUE, PlotDraws, SampleInputs as DrawInputs,
};
use crate::viz::settings::Scene;

impl SceneState {
    /// Where the plots go inside `area` (pixels of a target of size
    /// `target`); `scale` is pixels per point, for the margins.
    pub fn layout(&self, area: PixelRect, target: (u32, u32), scale: f32) -> SceneLayout {
        let inner = area.inset(46.0 * scale, 20.0 * scale, 16.0 * scale, 42.0 * scale);
        let pi_panel =
            self.settings.layers.pi_panel && self.mdn.as_ref().is_some_and(|m| m.curves.is_some());
        let (main_rect, pi_rect) = if pi_panel {
            let h = inner.height();
            let pi_h = (h * 0.22).max(40.0 * scale);
            let gap = 34.0 * scale;
            let main = PixelRect::new(inner.x0, inner.y0, inner.x1, inner.y1 - pi_h - gap);
            let pi = PixelRect::new(inner.x0, inner.y1 - pi_h, inner.x1, inner.y1);
            (main, Some(pi))
        } else {
            (inner, None)
        };
        SceneLayout {
            main: PlotView {
                x: self.view_x,
                y: self.view_y,
                rect: main_rect,
                target,
            },
            pi: pi_rect.map(|rect| PlotView {
                x: self.view_x,
                y: Span::new(0.0, 1.0),
                rect,
                target,
            }),
        }
    }

    /// Everything to draw, in order: density, samples, data, curves.
    pub fn plots(&self, layout: &SceneLayout, scale: f32) -> Vec<PlotDraws<'_>> {
        let layers = self.settings.layers;
        let mut main = Vec::new();
        let mut pi = Vec::new();
        // Curves exist only over an x grid (one input and target column).
        let mdn_curves = self
            .mdn
            .as_ref()
            .and_then(|m| Some((m, m.curves.as_ref()?)));
        if let Some((_, curves)) = mdn_curves
            && layers.density
        {
            let info = curves.info();
            main.push(Draw::Heat {
                bind_group: &curves.heat_bind,
                cols: curves.cols() as u32,
                rows: curves.heat_rows() as u32,
                rect: [info.in_lo, info.in_hi, info.t_lo, info.t_hi],
                color: colors::HEAT,
            });
        }
        if let Some(s) = &self.sampler
            && layers.samples
        {
            let inputs = match &self.sample_inputs {
                SampleInputs::Grid(span) => DrawInputs::Grid {
                    rows: s.rows() as u32,
                    per_input: s.per_input() as u32,
                    span: *span,
                },
                SampleInputs::Rows { xs, .. } => DrawInputs::PerSample(xs),
            };
            main.push(Draw::Samples {
                buffer: &s.samples,
                count: (s.rows() * s.per_input()) as u32,
                owners: (layers.components && self.mdn.is_some()).then_some(&s.components),
                inputs,
                dims: self.data.out_dim as u32,
                dim: self.plot.target as u32,
                target_norm: self.target_norm_of_plot(),
                // An MLP's predictions at the data rows (see `build_sampler`).
                color: if self.mdn.is_some() {
                    colors::SAMPLES
                } else {
                    colors::MLP
                },
                radius: 1.6 * scale,
            });
        }
        // The data on top of the sample cloud, so both stay visible.
        if layers.data {
            main.push(Draw::Points {
                buffer: &self.points,
                count: self.data.len() as u32,
                owners: self.owners_in_step(),
                color: colors::DATA,
                radius: 2.2 * scale,
            });
        }
        if let Some((mdn, curves)) = mdn_curves {
            let cols = curves.cols() as u32;
            for k in 0..mdn.spec.k() as u32 {
                let color = colors::component(k as usize);
                if layers.means {
                    main.push(Draw::Strip {
                        buffer: &curves.verts,
                        first: k * cols,
                        count: cols,
                        y_field: FIELD_Y,
                        alpha_field: FIELD_PI,
                        color,
                        half_width: 1.6 * scale,
                    });
                }
                if layout.pi.is_some() {
                    pi.push(Draw::Strip {
                        buffer: &curves.verts,
                        first: k * cols,
                        count: cols,
                        y_field: FIELD_PI,
                        alpha_field: OPAQUE,
                        color,
                        half_width: 1.3 * scale,
                    });
                }
            }
        }
        if let Some((mdn, curves)) = mdn_curves {
            let (cols, k) = (curves.cols() as u32, mdn.spec.k() as u32);
            for (on, strip, color) in [
                (layers.mean, k, colors::MDN_MEAN),
                (layers.mode, k + 1, colors::MDN_MODE),
            ] {
                if on {
                    main.push(Draw::Strip {
                        buffer: &curves.verts,
                        first: strip * cols,
                        count: cols,
                        y_field: FIELD_Y,
                        alpha_field: OPAQUE,
                        color,
                        half_width: 1.8 * scale,
                    });
                }
            }
        }
        if let Some(curves) = self.mlp.as_ref().and_then(|m| m.curves.as_ref()) {
            main.push(Draw::Strip {
                buffer: &curves.verts,
                first: 0,
                count: curves.cols() as u32,
                y_field: FIELD_Y,
                alpha_field: OPAQUE,
                color: colors::MLP,
                half_width: 2.0 * scale,
            });
        }
        let mut out = vec![PlotDraws {
            view: layout.main,
            grid_color: colors::GRID,
            draws: main,
        }];
        if let Some(view) = layout.pi {
            out.push(PlotDraws {
                view,
                grid_color: colors::GRID,
                draws: pi,
            });
        }
        out
    }

    /// (label, colour, drawn as a line) for each thing on the plot.
    pub fn legend(&self) -> Vec<(&'static str, [f32; 4], bool)> {
        let layers = self.settings.layers;
        let mut items = Vec::new();
        // By component: the swatch is the first component's colour.
        let owned = layers.components && self.mdn.is_some();
        if layers.data {
            if owned && self.owners.is_some() {
                items.push((
                    "Data (colour: most responsible component)",
                    colors::component(0),
                    false,
                ));
            } else {
                items.push(("Data", colors::DATA, false));
            }
        }
        // The nets there are: a loaded model is either.
        if self.mlp.as_ref().is_some_and(|m| m.curves.is_some()) {
            items.push(("MLP", colors::MLP, true));
        } else if self.mlp.is_some() && self.sampler.is_some() && layers.samples {
            items.push(("MLP predictions at the data rows", colors::MLP, false));
        }
        // Conditioned samples have no x-grid curves beside them.
        let curves = !self.conditioned();
        if self.mdn.is_some() {
            if layers.samples && self.conditioned() {
                items.push((
                    "MDN samples, each at a data row's inputs",
                    if owned {
                        colors::component(0)
                    } else {
                        colors::SAMPLES
                    },
                    false,
                ));
            } else if layers.samples && owned {
                items.push((
                    "MDN samples (colour: their component)",
                    colors::component(0),
                    false,
                ));
            } else if layers.samples {
                items.push(("MDN samples", colors::SAMPLES, false));
            }
            if layers.means && curves {
                items.push((
                    "MDN means \u{03bc}_k (opacity \u{03c0}_k)",
                    colors::component(0),
                    true,
                ));
            }
            if layers.density && curves {
                items.push(("MDN density p(t|x)", colors::HEAT, false));
            }
            if layers.mean && curves {
                items.push(("MDN mean E[t|x]", colors::MDN_MEAN, true));
            }
            if layers.mode && curves {
                items.push(("MDN mode (peak of p(t|x))", colors::MDN_MODE, true));
            }
        }
        items
    }

    /// Whether the legend goes in the lower-right corner, where the inverse
    /// problem has no data (elsewhere the upper left is empty).
    pub fn legend_low_right(&self) -> bool {
        matches!(self.scene, Scene::Inverse | Scene::Mdn)
    }

    /// Axis titles (horizontal, vertical).
    pub fn axis_names(&self) -> (String, String) {
        let name = |v: &[String], c: usize| v.get(c).cloned().unwrap_or_default();
        let (i, t) = (
            name(&self.data.input_names, self.plot.input),
            name(&self.data.target_names, self.plot.target),
        );
        match self.scene {
            Scene::Forward | Scene::Playground | Scene::Data => (i, t),
            Scene::Inverse | Scene::Mdn => (format!("{i} (input)"), format!("{t} (target)")),
        }
    }

    /// "MSE 0.0123", "NLL -1.234", both in the playground, "-" before
    /// the first reading.
    pub fn loss_text(&self) -> String {
        let parts: Vec<String> = self
            .nets()
            .map(|n| match n.loss {
                Some(l) => format!("{} {l:.4}", n.loss_name()),
                None => format!("{} -", n.loss_name()),
            })
            .collect();
        if parts.is_empty() {
            "Loss -".into()
        } else {
            parts.join("  ")
        }
    }
}
