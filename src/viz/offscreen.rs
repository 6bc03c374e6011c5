//! `mdn render`: trains a scene, renders it with the window's renderer into
//! an offscreen texture, reads the pixels back and writes a PNG. Needs no
//! window system.

use std::path::Path;
use std::sync::mpsc;

use crate::data::Dataset;
use crate::error::GpuError;
use crate::error::{MdnError, Result};
use crate::model::Model;

use super::colors;
use super::egui_pass::{EguiFrame, EguiPass};
use super::net::VizGpu;
use super::overlay;
use super::plot::PixelRect;
use super::renderer::{Renderer, begin_pass};
use super::scene::{PlotColumns, SceneLayout, SceneState};
use super::settings::{Scene, Settings, Status};

/// The offscreen format: 8-bit RGBA in gamma space, as egui expects and
/// PNG stores.
pub const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// Steps between loss readings while training for a render.
const READ_EVERY: usize = 1000;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub scene: Scene,
    pub settings: Settings,
    pub steps: usize,
    pub width: u32,
    pub height: u32,
    /// The playground's points (or another data set for any scene); the
    /// data scene's data.
    pub points: Option<Dataset>,
    /// The data scene's model (drawn, not trained).
    pub model: Option<Model>,
    /// The data scene's plotted columns.
    pub plot: PlotColumns,
    pub legend: bool,
    /// The title and the Epoch / Loss / Status line.
    pub caption: bool,
}

impl RenderOptions {
    pub fn new(scene: Scene) -> Self {
        RenderOptions {
            scene,
            settings: Settings::default(),
            steps: 3000,
            width: 960,
            height: 600,
            points: None,
            model: None,
            plot: PlotColumns::default(),
            legend: true,
            caption: true,
        }
    }
}

/// A finished render: RGBA8 rows top to bottom, and where the plots are.
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
    pub layout: SceneLayout,
    pub status: Status,
    pub epoch: usize,
    pub loss: String,
    /// Where the nets trained (`None` with no net, e.g. an empty playground).
    pub trained_on: Option<String>,
    /// The toy scenes' gap-to-optimum meter, as drawn.
    pub gap: Option<super::scene::Gap>,
    /// The MDN's dead components, if the scene has an MDN.
    pub dead_components: Option<Vec<usize>>,
}

impl Rendered {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }

    pub fn png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::Adaptive,
        );
        image::ImageEncoder::write_image(
            encoder,
            &self.rgba,
            self.width,
            self.height,
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|e| MdnError::Data(format!("encoding the PNG: {e}")))?;
        Ok(out)
    }

    /// Writes the PNG whole or not at all.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, &self.png()?)
    }
}

/// Trains `opts.scene` for `opts.steps` steps and renders it.
pub fn render(gpu: &VizGpu, opts: &RenderOptions) -> Result<Rendered> {
    let limit = gpu.ctx.device.limits().max_texture_dimension_2d;
    if opts.width < 64 || opts.height < 64 || opts.width > limit || opts.height > limit {
        return Err(MdnError::Config(format!(
            "--width and --height must be 64..={limit} pixels, got {}×{}",
            opts.width, opts.height
        )));
    }
    let mut settings = opts.settings.clone();
    // A render trains exactly the steps asked for.
    settings.stop_when_converged = false;
    let mut scene = match (opts.scene, &opts.points) {
        (Scene::Data, Some(data)) => {
            SceneState::with_model(gpu, settings, data.clone(), opts.model.clone(), opts.plot)?
        }
        _ => SceneState::new(gpu, opts.scene, settings, opts.points.clone())?,
    };
    scene.set_playing(true);
    let mut done = 0;
    while done < opts.steps && scene.playing {
        let n = READ_EVERY.min(opts.steps - done);
        scene.train(n)?;
        scene.read_loss()?;
        done += n;
    }
    // Paused for the picture: the caption says Ready (or Converged,
    // Diverged), not Training.
    scene.set_playing(false);
    render_state(gpu, &mut scene, opts)
}

/// Renders `scene` as it is (no training).
pub fn render_state(
    gpu: &VizGpu,
    scene: &mut SceneState,
    opts: &RenderOptions,
) -> Result<Rendered> {
    let ctx = &gpu.ctx;
    let device = &ctx.device;
    let (w, h) = (opts.width, opts.height);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("offscreen"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: FORMAT,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let mut renderer = Renderer::new(device, &gpu.viz, FORMAT);
    let mut egui_pass = EguiPass::new(device, FORMAT);

    let top = if opts.caption { 34.0 } else { 4.0 };
    let area = PixelRect::new(0.0, top, w as f32, h as f32);
    let layout = scene.layout(area, (w, h), 1.0);

    let egui_ctx = egui::Context::default();
    egui_ctx.set_visuals(egui::Visuals::dark());
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(w as f32, h as f32),
        )),
        ..Default::default()
    };
    let mut output = egui_ctx.run_ui(input, |ui| {
        let painter = ui.painter();
        overlay::paint_scene(painter, scene, &layout, 1.0, opts.legend);
        if opts.caption {
            overlay::paint_caption(painter, scene, 1.0, w as f32);
        }
    });
    let frame = EguiFrame::take(&mut output);

    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("offscreen frame"),
    });
    scene.encode(&mut encoder)?;
    let plots = scene.plots(&layout, 1.0);
    let prepared = renderer.prepare(device, &ctx.queue, &plots);
    let ui = egui_pass.prepare(&egui_ctx, device, &ctx.queue, &mut encoder, [w, h], frame);
    {
        let mut pass = begin_pass(&mut encoder, &view, Some(colors::clear()));
        renderer.draw(&mut pass, &plots, &prepared);
        egui_pass.draw(&mut pass, &ui);
    }
    egui_pass.finish(ui);

    let row_bytes = w * 4;
    let padded = row_bytes.next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("offscreen readback"),
        size: padded as u64 * h as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture: &texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded),
                rows_per_image: Some(h),
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    ctx.queue.submit([encoder.finish()]);
    let (tx, rx) = mpsc::channel();
    readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait_idle("the render")?;
    crate::gpu::buffers::await_map(ctx, &rx, "reading the rendered image back")?;
    let mut rgba = Vec::with_capacity((row_bytes * h) as usize);
    {
        let mapped = readback
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Internal(format!("reading the rendered image back: {e}")))?;
        for row in mapped.chunks_exact(padded as usize) {
            rgba.extend_from_slice(&row[..row_bytes as usize]);
        }
    }
    readback.unmap();
    Ok(Rendered {
        width: w,
        height: h,
        rgba,
        layout,
        status: scene.status,
        epoch: scene.epoch(),
        loss: scene.loss_text(),
        trained_on: scene.trainer_device(),
        gap: scene.gap(),
        dead_components: scene.mdn.as_ref().map(|n| n.dead_components.clone()),
    })
}
