//! egui's output drawn on top of the scene, on any texture view.

use egui_wgpu::{Renderer, RendererOptions, ScreenDescriptor};

/// The parts of egui's `FullOutput` that are drawn.
pub struct EguiFrame {
    pub shapes: Vec<egui::epaint::ClippedShape>,
    pub textures: egui::TexturesDelta,
    pub pixels_per_point: f32,
}

impl EguiFrame {
    /// Takes the drawn parts, leaving the platform and viewport output.
    pub fn take(output: &mut egui::FullOutput) -> Self {
        EguiFrame {
            shapes: std::mem::take(&mut output.shapes),
            textures: std::mem::take(&mut output.textures_delta),
            pixels_per_point: output.pixels_per_point,
        }
    }
}

pub struct EguiPass {
    renderer: Renderer,
}

impl EguiPass {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        EguiPass {
            renderer: Renderer::new(
                device,
                format,
                RendererOptions {
                    // Dithering is per-fragment work that flat UI colours
                    // do not need.
                    dithering: false,
                    ..RendererOptions::default()
                },
            ),
        }
    }

    /// Uploads the frame's textures and meshes; draw them with
    /// [`EguiPass::draw`] in a pass recorded after this.
    pub fn prepare(
        &mut self,
        ctx: &egui::Context,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        size: [u32; 2],
        mut frame: EguiFrame,
    ) -> PreparedUi {
        let ppp = frame.pixels_per_point;
        for (id, deltas) in &frame.textures.set {
            for delta in deltas {
                self.renderer.update_texture(device, queue, *id, delta);
            }
        }
        let jobs = ctx.tessellate(std::mem::take(&mut frame.shapes), ppp);
        let screen = ScreenDescriptor {
            size_in_pixels: size,
            pixels_per_point: ppp,
        };
        // No paint callbacks are used, so there are no extra command
        // buffers to submit.
        let _ = self
            .renderer
            .update_buffers(device, queue, encoder, &jobs, &screen);
        PreparedUi {
            jobs,
            screen,
            free: std::mem::take(&mut frame.textures.free)
                .into_iter()
                .collect(),
        }
    }

    /// Draws the prepared UI into `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'static>, ui: &PreparedUi) {
        self.renderer.render(pass, &ui.jobs, &ui.screen);
    }

    /// Frees the textures egui let go of; after the pass that drew them.
    pub fn finish(&mut self, ui: PreparedUi) {
        for id in &ui.free {
            self.renderer.free_texture(id);
        }
    }
}

/// A tessellated UI frame, uploaded and ready to draw.
pub struct PreparedUi {
    jobs: Vec<egui::ClippedPrimitive>,
    screen: ScreenDescriptor,
    free: Vec<egui::TextureId>,
}
