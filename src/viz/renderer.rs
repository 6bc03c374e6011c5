//! The scene renderer: records every plot's draws into one render pass on
//! any texture view, a window's surface or an offscreen texture alike.
//! Points are instanced sprites, curves instanced thick segments, all read
//! from GPU buffers the scene owns (`shaders/points.wgsl`).

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::curves::VizKernels;
use super::plot::{PlotView, Span, nice_ticks};

use super::colors;

const POINTS_WGSL: &str = include_str!("../../shaders/points.wgsl");

/// The WGSL source, for validation without a device: `points.wgsl` after
/// the component palette, which is defined once, in [`colors`].
pub fn points_source() -> String {
    let entries: Vec<String> = colors::COMPONENTS
        .iter()
        .map(|c| format!("vec4<f32>({:?}, {:?}, {:?}, {:?})", c[0], c[1], c[2], c[3]))
        .collect();
    format!(
        "const PALETTE_LEN: u32 = {}u;\nconst PALETTE = array<vec4<f32>, {}>({});\n\n{POINTS_WGSL}",
        entries.len(),
        entries.len(),
        entries.join(", ")
    )
}

/// Mirrors `DrawInfo` in `shaders/points.wgsl`: one draw's uniforms.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DrawInfo {
    pub transform: [f32; 4],
    pub color: [f32; 4],
    pub size: [f32; 4],
    pub extra: [f32; 4],
    pub index: [u32; 4],
}

/// Field numbers of a curve vertex `(x, y, alpha or π, σ)`.
pub const FIELD_Y: u32 = 1;
pub const FIELD_PI: u32 = 2;
/// "No alpha field": the segment is opaque.
pub const OPAQUE: u32 = 4;

/// One thing to draw inside a plot, reading a buffer someone else owns.
pub enum Draw<'a> {
    /// `vec2` (input, target) per point, data units.
    Points {
        buffer: &'a wgpu::Buffer,
        count: u32,
        /// Each point's component (u32, at least `count`): coloured by it.
        owners: Option<&'a wgpu::Buffer>,
        color: [f32; 4],
        radius: f32,
    },
    /// The sampler's output as instances: `dims` z-scored targets per
    /// sample, of which dimension `dim` is drawn against the sample's input.
    Samples {
        buffer: &'a wgpu::Buffer,
        count: u32,
        /// Each sample's component (u32, at least `count`): coloured by it.
        owners: Option<&'a wgpu::Buffer>,
        inputs: SampleInputs<'a>,
        dims: u32,
        dim: u32,
        /// (mean, std) of the drawn target dimension.
        target_norm: (f32, f32),
        color: [f32; 4],
        radius: f32,
    },
    /// A line strip over `count` curve vertices from vertex `first`.
    Strip {
        buffer: &'a wgpu::Buffer,
        first: u32,
        count: u32,
        y_field: u32,
        alpha_field: u32,
        color: [f32; 4],
        half_width: f32,
    },
    /// The density heat cells `[rows, cols]` stretched over `rect`
    /// (x0, x1, y0, y1 in data units); `color` is the middle of the ramp.
    Heat {
        bind_group: &'a wgpu::BindGroup,
        cols: u32,
        rows: u32,
        rect: [f32; 4],
        color: [f32; 4],
    },
}

/// Where each sample's input (its x) comes from.
#[derive(Clone, Copy)]
pub enum SampleInputs<'a> {
    /// Sample i belongs to input row `i / per_input` of `rows` inputs
    /// evenly spaced over `span` (at cell centres): the sampler's x grid.
    Grid {
        rows: u32,
        per_input: u32,
        span: Span,
    },
    /// One f32 per sample (data units), read as a second instance buffer:
    /// samples conditioned on data rows, at each row's plotted input.
    PerSample(&'a wgpu::Buffer),
}

/// What a sampled-points pipeline is built for: the floats per sample in
/// the sampler's buffer (the instance stride), colouring by component, and
/// inputs from a per-sample buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SampleKey {
    dims: u32,
    owned: bool,
    per_sample: bool,
}

impl SampleKey {
    fn of(d: &Draw<'_>) -> Option<Self> {
        match d {
            Draw::Samples {
                owners,
                inputs,
                dims,
                ..
            } => Some(SampleKey {
                dims: (*dims).max(1),
                owned: owners.is_some(),
                per_sample: matches!(inputs, SampleInputs::PerSample(_)),
            }),
            _ => None,
        }
    }
}

/// A plot and what goes in it, drawn in this order after its grid lines.
pub struct PlotDraws<'a> {
    pub view: PlotView,
    pub grid_color: [f32; 4],
    pub draws: Vec<Draw<'a>>,
}

/// At most this many grid lines per axis, for a plot `len` pixels long.
pub fn tick_count(len_px: f32) -> usize {
    ((len_px / 50.0) as usize).clamp(2, 10)
}

pub fn x_ticks(view: &PlotView) -> Vec<f32> {
    nice_ticks(view.x, tick_count(view.rect.width()))
}

pub fn y_ticks(view: &PlotView) -> Vec<f32> {
    nice_ticks(view.y, tick_count(view.rect.height()))
}

pub struct Renderer {
    format: wgpu::TextureFormat,
    draw_layout: wgpu::BindGroupLayout,
    module: wgpu::ShaderModule,
    base: wgpu::PipelineLayout,
    points: wgpu::RenderPipeline,
    points_owned: wgpu::RenderPipeline,
    /// Built as draws ask for them: the stride is the sampler's target
    /// dimension count, which only a model or the data settles.
    samples: HashMap<SampleKey, wgpu::RenderPipeline>,
    strip: wgpu::RenderPipeline,
    lines: wgpu::RenderPipeline,
    heat: wgpu::RenderPipeline,
    stride: u64,
    uniforms: wgpu::Buffer,
    uniform_capacity: u64,
    draw_bind: wgpu::BindGroup,
    grid: wgpu::Buffer,
    grid_capacity: u64,
}

const GRID_LINE_BYTES: u64 = 32;

impl Renderer {
    pub fn new(device: &wgpu::Device, viz: &VizKernels, format: wgpu::TextureFormat) -> Self {
        let draw_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("draw info"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(size_of::<DrawInfo>() as u64),
                },
                count: None,
            }],
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("points"),
            source: wgpu::ShaderSource::Wgsl(points_source().into()),
        });
        let base = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("plot"),
            bind_group_layouts: &[Some(&draw_layout)],
            immediate_size: 0,
        });
        let with_heat = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("heat"),
            bind_group_layouts: &[Some(&draw_layout), Some(&viz.heat_layout)],
            immediate_size: 0,
        });
        let point_attrs = [attr(0, wgpu::VertexFormat::Float32x2, 0)];
        let owner_attrs = [attr(1, wgpu::VertexFormat::Uint32, 0)];
        let a_attrs = [attr(0, wgpu::VertexFormat::Float32x4, 0)];
        let b_attrs = [attr(1, wgpu::VertexFormat::Float32x4, 0)];
        let pair_attrs = [
            attr(0, wgpu::VertexFormat::Float32x4, 0),
            attr(1, wgpu::VertexFormat::Float32x4, 16),
        ];
        let pipeline = |label: &str,
                        layout: &wgpu::PipelineLayout,
                        vs: &str,
                        fs: &str,
                        buffers: &[Option<wgpu::VertexBufferLayout<'_>>]| {
            render_pipeline(device, &module, format, label, layout, vs, fs, buffers)
        };
        let points = pipeline(
            "data points",
            &base,
            "vs_point",
            "fs_point",
            &[instanced(8, &point_attrs)],
        );
        let points_owned = pipeline(
            "data points by component",
            &base,
            "vs_point_owned",
            "fs_point",
            &[instanced(8, &point_attrs), instanced(4, &owner_attrs)],
        );
        let strip = pipeline(
            "curve",
            &base,
            "vs_segment",
            "fs_segment",
            &[instanced(16, &a_attrs), instanced(16, &b_attrs)],
        );
        let lines = pipeline(
            "grid lines",
            &base,
            "vs_segment",
            "fs_segment",
            &[instanced(GRID_LINE_BYTES, &pair_attrs)],
        );
        let heat = pipeline("density", &with_heat, "vs_heat", "fs_heat", &[]);
        let align = device.limits().min_uniform_buffer_offset_alignment as u64;
        let stride = (size_of::<DrawInfo>() as u64).next_multiple_of(align);
        let (uniforms, draw_bind) = Self::uniform_buffer(device, &draw_layout, stride, 16);
        let grid = Self::grid_buffer(device, 64);
        Renderer {
            format,
            draw_layout,
            points,
            points_owned,
            samples: HashMap::new(),
            strip,
            lines,
            heat,
            module,
            base,
            stride,
            uniforms,
            uniform_capacity: 16,
            draw_bind,
            grid,
            grid_capacity: 64,
        }
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Builds the sampled-points pipeline for `key` unless there is one.
    fn ensure_sample_pipeline(&mut self, device: &wgpu::Device, key: SampleKey) {
        if self.samples.contains_key(&key) {
            return;
        }
        // The sampler's buffer holds `dims` floats per sample; the draw's
        // slice starts at the drawn dimension, so attribute 0 reads it.
        let z_attrs = [attr(0, wgpu::VertexFormat::Float32, 0)];
        let owner_attrs = [attr(1, wgpu::VertexFormat::Uint32, 0)];
        let x_attrs = [attr(2, wgpu::VertexFormat::Float32, 0)];
        let mut buffers = vec![instanced(4 * key.dims as u64, &z_attrs)];
        if key.owned {
            buffers.push(instanced(4, &owner_attrs));
        }
        if key.per_sample {
            buffers.push(instanced(4, &x_attrs));
        }
        let vs = match (key.per_sample, key.owned) {
            (false, false) => "vs_sample",
            (false, true) => "vs_sample_owned",
            (true, false) => "vs_sample_at",
            (true, true) => "vs_sample_at_owned",
        };
        let p = render_pipeline(
            device,
            &self.module,
            self.format,
            "sampled points",
            &self.base,
            vs,
            "fs_point",
            &buffers,
        );
        self.samples.insert(key, p);
    }

    fn uniform_buffer(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        stride: u64,
        records: u64,
    ) -> (wgpu::Buffer, wgpu::BindGroup) {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("draw infos"),
            size: stride * records,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("draw infos"),
            layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffer,
                    offset: 0,
                    size: wgpu::BufferSize::new(size_of::<DrawInfo>() as u64),
                }),
            }],
        });
        (buffer, bind)
    }

    fn grid_buffer(device: &wgpu::Device, lines: u64) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("grid lines"),
            size: lines * GRID_LINE_BYTES,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Records one render pass on `target` (of this renderer's format):
    /// clears it to `clear` when given, then draws each plot.
    pub fn record(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &wgpu::TextureView,
        clear: Option<wgpu::Color>,
        plots: &[PlotDraws<'_>],
    ) {
        let prepared = self.prepare(device, queue, plots);
        let mut pass = begin_pass(encoder, target, clear);
        self.draw(&mut pass, plots, &prepared);
    }

    /// Writes the per-draw uniforms and grid lines with
    /// `queue.write_buffer`, so they land before the next submission; call
    /// before the pass that [`Renderer::draw`]s the same plots.
    pub fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        plots: &[PlotDraws<'_>],
    ) -> Prepared {
        let mut infos: Vec<DrawInfo> = Vec::new();
        let mut grid: Vec<[f32; 8]> = Vec::new();
        let mut grid_ranges = Vec::new();
        for plot in plots {
            let v = &plot.view;
            let start = grid.len() as u32;
            for x in x_ticks(v) {
                grid.push([x, v.y.lo, 0.0, 1.0, x, v.y.hi, 0.0, 1.0]);
            }
            for y in y_ticks(v) {
                grid.push([v.x.lo, y, 0.0, 1.0, v.x.hi, y, 0.0, 1.0]);
            }
            grid_ranges.push(start..grid.len() as u32);
            let base = DrawInfo {
                transform: v.clip_transform(),
                size: [v.target.0 as f32, v.target.1 as f32, 0.0, 0.0],
                ..Default::default()
            };
            infos.push(DrawInfo {
                color: plot.grid_color,
                size: [base.size[0], base.size[1], 0.5, 0.0],
                index: [FIELD_Y, OPAQUE, 0, 0],
                ..base
            });
            for d in &plot.draws {
                infos.push(draw_info(&base, d));
                if let Some(key) = SampleKey::of(d) {
                    self.ensure_sample_pipeline(device, key);
                }
            }
        }
        let records = infos.len() as u64;
        if records > self.uniform_capacity {
            let cap = records.next_power_of_two();
            (self.uniforms, self.draw_bind) =
                Self::uniform_buffer(device, &self.draw_layout, self.stride, cap);
            self.uniform_capacity = cap;
        }
        let mut bytes = vec![0u8; (records * self.stride) as usize];
        for (i, info) in infos.iter().enumerate() {
            let at = i * self.stride as usize;
            bytes[at..at + size_of::<DrawInfo>()].copy_from_slice(bytemuck::bytes_of(info));
        }
        if !bytes.is_empty() {
            queue.write_buffer(&self.uniforms, 0, &bytes);
        }
        if grid.len() as u64 > self.grid_capacity {
            self.grid_capacity = (grid.len() as u64).next_power_of_two();
            self.grid = Self::grid_buffer(device, self.grid_capacity);
        }
        if !grid.is_empty() {
            queue.write_buffer(&self.grid, 0, bytemuck::cast_slice(&grid));
        }
        Prepared { grid_ranges }
    }

    /// Draws the plots [`Renderer::prepare`]d, each clipped to its
    /// rectangle, into an open pass.
    pub fn draw(
        &self,
        pass: &mut wgpu::RenderPass<'_>,
        plots: &[PlotDraws<'_>],
        prepared: &Prepared,
    ) {
        let mut record = 0u32;
        let mut next_offset = || {
            let o = record as u64 * self.stride;
            record += 1;
            o as u32
        };
        for (plot, grid_range) in plots.iter().zip(prepared.grid_ranges.iter().cloned()) {
            let Some((x, y, w, h)) = plot.view.scissor() else {
                // Keep the records in step with `infos`.
                next_offset();
                plot.draws.iter().for_each(|_| {
                    next_offset();
                });
                continue;
            };
            pass.set_scissor_rect(x, y, w, h);
            let offset = next_offset();
            if !grid_range.is_empty() {
                pass.set_pipeline(&self.lines);
                pass.set_bind_group(0, &self.draw_bind, &[offset]);
                pass.set_vertex_buffer(0, self.grid.slice(..));
                pass.draw(0..6, grid_range);
            }
            for d in &plot.draws {
                let offset = next_offset();
                pass.set_bind_group(0, &self.draw_bind, &[offset]);
                match d {
                    Draw::Points {
                        buffer,
                        count,
                        owners,
                        ..
                    } => {
                        if *count == 0 {
                            continue;
                        }
                        pass.set_vertex_buffer(0, buffer.slice(..));
                        match owners {
                            Some(o) => {
                                pass.set_pipeline(&self.points_owned);
                                pass.set_vertex_buffer(1, o.slice(..));
                            }
                            None => pass.set_pipeline(&self.points),
                        }
                        pass.draw(0..6, 0..*count);
                    }
                    Draw::Samples {
                        buffer,
                        count,
                        owners,
                        inputs,
                        dim,
                        ..
                    } => {
                        let Some(pipeline) = SampleKey::of(d).and_then(|k| self.samples.get(&k))
                        else {
                            continue;
                        };
                        if *count == 0 {
                            continue;
                        }
                        pass.set_pipeline(pipeline);
                        pass.set_vertex_buffer(0, buffer.slice(*dim as u64 * 4..));
                        let mut slot = 1;
                        if let Some(o) = owners {
                            pass.set_vertex_buffer(slot, o.slice(..));
                            slot += 1;
                        }
                        if let SampleInputs::PerSample(xs) = inputs {
                            pass.set_vertex_buffer(slot, xs.slice(..));
                        }
                        pass.draw(0..6, 0..*count);
                    }
                    Draw::Strip {
                        buffer,
                        first,
                        count,
                        ..
                    } => {
                        if *count < 2 {
                            continue;
                        }
                        let a = *first as u64 * 16;
                        pass.set_pipeline(&self.strip);
                        pass.set_vertex_buffer(0, buffer.slice(a..));
                        pass.set_vertex_buffer(1, buffer.slice(a + 16..));
                        pass.draw(0..6, 0..count - 1);
                    }
                    Draw::Heat { bind_group, .. } => {
                        pass.set_pipeline(&self.heat);
                        pass.set_bind_group(1, *bind_group, &[]);
                        pass.draw(0..6, 0..1);
                    }
                }
            }
        }
    }
}

/// What [`Renderer::prepare`] wrote: where each plot's grid lines are.
pub struct Prepared {
    grid_ranges: Vec<std::ops::Range<u32>>,
}

/// One render pass on `target`, cleared to `clear` or loaded. `'static`
/// (wgpu's `forget_lifetime`) so egui's renderer can draw in it too: the
/// scene and the HUD share one pass, which on a software rasteriser saves
/// a full load and store of the target.
pub fn begin_pass(
    encoder: &mut wgpu::CommandEncoder,
    target: &wgpu::TextureView,
    clear: Option<wgpu::Color>,
) -> wgpu::RenderPass<'static> {
    encoder
        .begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("plots"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: match clear {
                        Some(c) => wgpu::LoadOp::Clear(c),
                        None => wgpu::LoadOp::Load,
                    },
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        })
        .forget_lifetime()
}

fn attr(
    location: u32,
    format: wgpu::VertexFormat,
    offset: wgpu::BufferAddress,
) -> wgpu::VertexAttribute {
    wgpu::VertexAttribute {
        format,
        offset,
        shader_location: location,
    }
}

fn instanced(
    stride: wgpu::BufferAddress,
    attributes: &[wgpu::VertexAttribute],
) -> Option<wgpu::VertexBufferLayout<'_>> {
    Some(wgpu::VertexBufferLayout {
        array_stride: stride,
        step_mode: wgpu::VertexStepMode::Instance,
        attributes,
    })
}

/// One of the renderer's pipelines: `points.wgsl`'s `vs` and `fs`,
/// alpha-blended onto a target of `format`.
#[expect(
    clippy::too_many_arguments,
    reason = "one descriptor's fields, named at each call"
)]
fn render_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    format: wgpu::TextureFormat,
    label: &str,
    layout: &wgpu::PipelineLayout,
    vs: &str,
    fs: &str,
    buffers: &[Option<wgpu::VertexBufferLayout<'_>>],
) -> wgpu::RenderPipeline {
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        vertex: wgpu::VertexState {
            module,
            entry_point: Some(vs),
            compilation_options: Default::default(),
            buffers,
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some(fs),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: Some(wgpu::BlendState::ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        multiview_mask: None,
        cache: None,
    })
}

fn draw_info(base: &DrawInfo, d: &Draw<'_>) -> DrawInfo {
    let size = |r: f32| [base.size[0], base.size[1], r, 0.0];
    match *d {
        Draw::Points { color, radius, .. } => DrawInfo {
            color,
            size: size(radius),
            ..*base
        },
        Draw::Samples {
            inputs,
            target_norm,
            color,
            radius,
            ..
        } => {
            let (span, rows, per_input) = match inputs {
                SampleInputs::Grid {
                    rows,
                    per_input,
                    span,
                } => (span, rows, per_input),
                SampleInputs::PerSample(_) => (Span::new(0.0, 1.0), 0, 0),
            };
            DrawInfo {
                color,
                size: size(radius),
                extra: [target_norm.0, target_norm.1, span.lo, span.hi],
                index: [rows, per_input, 0, 0],
                ..*base
            }
        }
        Draw::Strip {
            y_field,
            alpha_field,
            color,
            half_width,
            ..
        } => DrawInfo {
            color,
            size: size(half_width),
            index: [y_field, alpha_field, 0, 0],
            ..*base
        },
        Draw::Heat {
            cols,
            rows,
            rect,
            color,
            ..
        } => DrawInfo {
            color,
            extra: rect,
            index: [cols, rows, 0, 0],
            ..*base
        },
    }
}
