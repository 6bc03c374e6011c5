//! `mdn view`: the desktop window (winit 0.30 `ApplicationHandler`). The
//! window is created in `resumed` and held in an `Arc` so the surface can be
//! `'static`; device, kernels and scenes outlive it. Each `RedrawRequested`
//! runs a few training steps, sometimes reads the loss, builds the HUD,
//! records the curve/sampling passes and one render pass, and asks for the
//! next frame while there is something to animate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winit::application::ApplicationHandler;
use winit::dpi::LogicalSize;
use winit::event::{ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

use std::path::PathBuf;

use crate::data::Dataset;
use crate::data::csv::{ColumnChoice, load_dataset};
use crate::error::GpuError;
use crate::error::{MdnError, Result};
use crate::gpu::context::{GpuContext, GpuOptions, create_instance};
use crate::model::Model;

use super::colors;
use super::egui_pass::{EguiFrame, EguiPass};
use super::hud::{self, Action, HudInput, STEP_BUTTON_STEPS};
use super::net::VizGpu;
use super::offscreen::{RenderOptions, render_state};
use super::presets::Preset;
use super::renderer::{Renderer, begin_pass};
use super::scene::{PlotColumns, SceneState};
use super::settings::{Scene, Settings};
use super::setup::{DataRef, Setup};
use super::stroke::Stroke;

#[derive(Clone, Debug)]
pub struct ViewOptions {
    pub scene: Scene,
    pub settings: Settings,
    pub gpu: GpuOptions,
    /// Close after this many presented frames (tests, measurements).
    pub max_frames: Option<u64>,
    /// Start training at once instead of waiting for Play.
    pub autoplay: bool,
    /// Logical window size.
    pub size: (u32, u32),
    /// Move to the next scene every this many frames (smoke tests).
    pub tour: Option<u64>,
    /// The user's data (`--data`) for the data scene, and their model.
    pub data: Option<Dataset>,
    pub model: Option<Model>,
    /// The data scene's plotted columns.
    pub plot: PlotColumns,
    /// Where that data and model came from, for Save setup.
    pub data_ref: Option<DataRef>,
    /// Points the playground starts with.
    pub preset: Option<Preset>,
    pub points: Option<Vec<(f32, f32)>>,
    /// Where screenshots, saved points and setups go.
    pub save_dir: PathBuf,
    /// Actions applied at given frames, as if the user had clicked (the
    /// window smoke test drives the controls this way).
    pub script: Vec<(u64, Action)>,
}

impl ViewOptions {
    pub fn new(scene: Scene) -> Self {
        ViewOptions {
            scene,
            settings: Settings::default(),
            gpu: GpuOptions::default(),
            max_frames: None,
            autoplay: false,
            size: (1200, 760),
            tour: None,
            data: None,
            model: None,
            plot: PlotColumns::default(),
            data_ref: None,
            preset: None,
            points: None,
            save_dir: PathBuf::from("."),
            script: Vec::new(),
        }
    }
}

/// What a window session did, for tests and `--frames` measurements.
#[derive(Clone, Debug, Default)]
pub struct ViewReport {
    pub frames: u64,
    /// Frames per second over the whole session, the first frame excluded
    /// (it pays for pipeline compilation).
    pub fps: f64,
    pub adapter: String,
    pub steps: usize,
    pub surface_format: String,
}

/// Files the window's Save buttons write in the save directory.
pub const POINTS_FILE: &str = "mdn-points.csv";
pub const SETUP_FILE: &str = "mdn-setup.json";
/// How long a save or screenshot notice stays in the HUD.
const NOTICE_FOR: Duration = Duration::from_secs(6);

/// The loss is read back this often while training.
const READ_INTERVAL: Duration = Duration::from_millis(250);
/// While training, curves and samples are recomputed this often.
const REFRESH_INTERVAL: Duration = Duration::from_millis(80);
/// Edited playground points are handed to the trainers this often.
const SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// Training steps per frame are adapted to keep a frame near this long.
const FRAME_BUDGET: Duration = Duration::from_millis(40);
const MAX_STEPS_PER_FRAME: f32 = 1024.0;
/// Training never stops altogether: a step every fourth frame at least.
const MIN_STEPS_PER_FRAME: f32 = 0.25;

/// Why there is no window, and what to do instead.
fn no_display(reason: &str) -> MdnError {
    MdnError::Data(format!(
        "cannot open a window: {reason}. `mdn view` needs a display (X11 or Wayland); \
         without one, render a scene to a PNG instead, e.g. `mdn render --scene mdn --out mdn.png`"
    ))
}

/// Whether a window system is reachable, judged from the environment
/// (winit's own check can abort the process on some setups).
pub fn display_available() -> bool {
    if cfg!(all(unix, not(target_os = "macos"))) {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    } else {
        true
    }
}

/// Opens the window and runs until it is closed.
pub fn run(opts: ViewOptions) -> Result<ViewReport> {
    if !display_available() {
        return Err(no_display("neither DISPLAY nor WAYLAND_DISPLAY is set"));
    }
    let event_loop = EventLoop::new().map_err(|e| no_display(&e.to_string()))?;
    run_on(event_loop, opts)
}

/// Runs the app on an event loop the caller made (tests build theirs with
/// `with_any_thread`).
pub fn run_on(event_loop: EventLoop<()>, opts: ViewOptions) -> Result<ViewReport> {
    let mut app = App {
        opts,
        running: None,
        error: None,
        report: ViewReport::default(),
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| no_display(&e.to_string()))?;
    if let Some(e) = app.error {
        return Err(e);
    }
    Ok(app.report)
}

struct App {
    opts: ViewOptions,
    running: Option<Running>,
    error: Option<MdnError>,
    report: ViewReport,
}

struct Running {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    view_format: wgpu::TextureFormat,
    gpu: VizGpu,
    renderer: Renderer,
    egui_pass: EguiPass,
    egui: egui_winit::State,
    scenes: HashMap<Scene, SceneState>,
    current: Scene,
    settings: Settings,
    rng: ChaCha8Rng,
    stroke: Stroke,
    adapter: String,
    /// Training steps per frame; below 1 a step runs every few frames.
    steps_per_frame: f32,
    step_credit: f32,
    last_read: Instant,
    last_sync: Instant,
    last_refresh: Instant,
    last_frame: Option<Instant>,
    fps: f32,
    frames: u64,
    second_frame_at: Option<Instant>,
    /// Redraw every frame even when idle (a frame budget was given).
    continuous: bool,
    tour: Option<u64>,
    autoplay: bool,
    save_dir: PathBuf,
    data_ref: Option<DataRef>,
    script: Vec<(u64, Action)>,
    /// The last save or screenshot, shown in the HUD for a while.
    notice: Option<(String, Instant)>,
    screenshots: u32,
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.running.is_some() {
            return;
        }
        match Running::new(event_loop, &self.opts) {
            Ok(r) => {
                self.report.adapter = r.adapter.clone();
                self.report.surface_format = format!("{:?}", r.config.format);
                r.window.request_redraw();
                self.running = Some(r);
            }
            Err(e) => {
                self.error = Some(e);
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let response = r.egui.on_window_event(&r.window, &event);
        if response.repaint {
            r.window.request_redraw();
        }
        let result = match event {
            WindowEvent::CloseRequested => {
                event_loop.exit();
                Ok(())
            }
            WindowEvent::Resized(size) => {
                r.resize(size.width, size.height);
                Ok(())
            }
            WindowEvent::KeyboardInput {
                event:
                    KeyEvent {
                        state: ElementState::Pressed,
                        logical_key,
                        repeat: false,
                        ..
                    },
                ..
            } if !response.consumed => {
                let action = match logical_key.as_ref() {
                    Key::Named(NamedKey::Escape) => Some(Action::Quit),
                    Key::Named(NamedKey::Space) => Some(Action::TogglePlay),
                    Key::Character("r" | "R") => Some(Action::Reset),
                    Key::Character("p" | "P") => Some(Action::Screenshot),
                    Key::Character(c) => c
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| Scene::ALL.get(n.wrapping_sub(1)).copied())
                        .map(Action::SetScene),
                    _ => None,
                };
                match action {
                    Some(Action::Quit) => {
                        event_loop.exit();
                        Ok(())
                    }
                    Some(a) => {
                        r.window.request_redraw();
                        r.apply(vec![a])
                    }
                    None => Ok(()),
                }
            }
            WindowEvent::RedrawRequested => match r.frame() {
                Ok(presented) => {
                    if presented {
                        self.report.frames = r.frames;
                        self.report.steps = r.scene().steps();
                        if let Some(t0) = r.second_frame_at
                            && r.frames > 1
                        {
                            let secs = t0.elapsed().as_secs_f64();
                            self.report.fps = (r.frames - 1) as f64 / secs.max(1e-9);
                        }
                    }
                    if self.opts.max_frames.is_some_and(|m| r.frames >= m) {
                        event_loop.exit();
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.error = Some(e);
            event_loop.exit();
        }
    }

    fn exiting(&mut self, _event_loop: &ActiveEventLoop) {
        // The surface must go before the window it draws to.
        self.running = None;
    }
}

impl Running {
    fn new(event_loop: &ActiveEventLoop, opts: &ViewOptions) -> Result<Self> {
        let attrs = Window::default_attributes()
            .with_title("mdn: mixture density networks")
            .with_inner_size(LogicalSize::new(opts.size.0, opts.size.1));
        let window = Arc::new(
            event_loop
                .create_window(attrs)
                .map_err(|e| no_display(&format!("creating the window failed: {e}")))?,
        );
        let instance =
            create_instance(&opts.gpu, Some(Box::new(event_loop.owned_display_handle())))?;
        let surface = instance
            .create_surface(Arc::clone(&window))
            .map_err(|e| GpuError::Internal(format!("creating the window surface: {e}")))?;
        let ctx = Arc::new(GpuContext::from_instance(
            instance,
            &opts.gpu,
            Some(&surface),
        )?);
        let caps = surface.get_capabilities(&ctx.adapter);
        let Some(&first) = caps.formats.first() else {
            return Err(GpuError::Internal(format!(
                "{} cannot present to this window (no surface formats)",
                ctx.describe()
            ))
            .into());
        };
        // egui blends in gamma space, and so do our colours: render through
        // a non-sRGB view of the swapchain.
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| !f.is_srgb())
            .unwrap_or(first);
        let view_format = format.remove_srgb_suffix();
        let size = window.inner_size();
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            color_space: Default::default(),
            width: size.width.max(1),
            height: size.height.max(1),
            present_mode: wgpu::PresentMode::AutoVsync,
            desired_maximum_frame_latency: 2,
            alpha_mode: caps.alpha_modes.first().copied().unwrap_or_default(),
            view_formats: if view_format != format {
                vec![view_format]
            } else {
                vec![]
            },
        };
        if size.width > 0 && size.height > 0 {
            surface.configure(&ctx.device, &config);
        }
        let gpu = VizGpu::new(Arc::clone(&ctx))?;
        let renderer = Renderer::new(&ctx.device, &gpu.viz, view_format);
        let egui_pass = EguiPass::new(&ctx.device, view_format);
        let egui_ctx = egui::Context::default();
        egui_ctx.set_visuals(egui::Visuals::dark());
        let egui = egui_winit::State::new(
            egui_ctx,
            egui::ViewportId::ROOT,
            event_loop,
            Some(window.scale_factor() as f32),
            window.theme(),
            Some(ctx.device.limits().max_texture_dimension_2d as usize),
        );
        let adapter = format!("{} ({})", ctx.info.name, ctx.backend_name());
        let mut running = Running {
            window,
            surface,
            config,
            view_format,
            gpu,
            renderer,
            egui_pass,
            egui,
            scenes: HashMap::new(),
            current: opts.scene,
            settings: opts.settings.clone(),
            rng: ChaCha8Rng::seed_from_u64(opts.settings.seed),
            stroke: Stroke::default(),
            adapter,
            steps_per_frame: 16.0,
            step_credit: 0.0,
            last_read: Instant::now(),
            last_sync: Instant::now(),
            last_refresh: Instant::now(),
            last_frame: None,
            fps: 0.0,
            frames: 0,
            second_frame_at: None,
            continuous: opts.max_frames.is_some(),
            tour: opts.tour,
            autoplay: opts.autoplay,
            save_dir: opts.save_dir.clone(),
            data_ref: opts.data_ref.clone(),
            script: opts.script.clone(),
            notice: None,
            screenshots: 0,
        };
        if let Some(data) = &opts.data {
            let s = SceneState::with_model(
                &running.gpu,
                running.settings.clone(),
                data.clone(),
                opts.model.clone(),
                opts.plot,
            )?;
            running.scenes.insert(Scene::Data, s);
        }
        running.switch_to(opts.scene)?;
        if let Some(p) = opts.preset {
            running.switch_to(Scene::Playground)?;
            let seed = running.settings.seed;
            running.scene_mut().load_preset(p, seed)?;
        }
        if let Some(points) = &opts.points {
            running.switch_to(Scene::Playground)?;
            running.scene_mut().replace_points(points)?;
        }
        if opts.autoplay {
            running.scene_mut().set_playing(true);
        }
        Ok(running)
    }

    fn scene(&self) -> &SceneState {
        &self.scenes[&self.current]
    }

    fn scene_mut(&mut self) -> &mut SceneState {
        self.scenes
            .get_mut(&self.current)
            .expect("the current scene is always built")
    }

    /// Scenes are kept when switching away, so going back resumes them.
    fn switch_to(&mut self, scene: Scene) -> Result<()> {
        if !self.scenes.contains_key(&scene) {
            let s = SceneState::new(&self.gpu, scene, self.settings.clone(), None)?;
            self.scenes.insert(scene, s);
        }
        self.current = scene;
        self.settings = self.scene().settings().clone();
        Ok(())
    }

    fn resize(&mut self, width: u32, height: u32) {
        // A minimised window is zero-sized: nothing to configure or draw
        // until it comes back.
        if width == 0 || height == 0 {
            return;
        }
        self.config.width = width;
        self.config.height = height;
        self.surface.configure(&self.gpu.ctx.device, &self.config);
        self.window.request_redraw();
    }

    fn apply(&mut self, actions: Vec<Action>) -> Result<()> {
        for a in actions {
            match a {
                Action::SetScene(s) => self.switch_to(s)?,
                Action::TogglePlay => {
                    let s = self.scene_mut();
                    let play = !s.playing;
                    s.set_playing(play);
                }
                Action::Step => {
                    let s = self.scene_mut();
                    if s.can_train() {
                        s.train(STEP_BUTTON_STEPS)?;
                        s.read_loss()?;
                    }
                }
                Action::Reset => self.scene_mut().reset()?,
                Action::Apply(settings) => {
                    self.settings = settings.clone();
                    self.scene_mut().apply_settings(settings)?;
                }
                Action::ClearPoints => self.scene_mut().clear_points()?,
                Action::Preset(p) => {
                    self.switch_to(Scene::Playground)?;
                    let seed = self.settings.seed;
                    self.scene_mut().load_preset(p, seed)?;
                }
                Action::AddPoints(p) => self.scene_mut().add_points(&p),
                Action::Erase {
                    x,
                    y,
                    radius,
                    aspect,
                } => self.scene_mut().erase(x, y, radius, aspect),
                Action::Screenshot
                | Action::SavePoints
                | Action::LoadPoints
                | Action::SaveSetup => {
                    // A file that cannot be written or read is the user's
                    // to fix: say so in the HUD, keep the window.
                    if let Err(e) = self.file_action(a) {
                        self.notify(format!("error: {e}"));
                    }
                }
                Action::NewData => {
                    let mut settings = self.settings.clone();
                    settings.seed = settings.seed.wrapping_add(1);
                    self.settings = settings.clone();
                    self.scene_mut().apply_settings(settings)?;
                }
                Action::Quit => {}
            }
        }
        Ok(())
    }

    /// The actions that write or read a file in the save directory.
    fn file_action(&mut self, action: Action) -> Result<()> {
        match action {
            Action::Screenshot => {
                let path = self.screenshot()?;
                self.notify(format!("Saved {}", path.display()));
            }
            Action::SavePoints => {
                let path = self.save_dir.join(POINTS_FILE);
                let (d, c) = (self.scene().data(), self.scene().plot_columns());
                let mut csv = format!("{},{}\n", d.input_names[c.input], d.target_names[c.target]);
                for r in 0..d.len() {
                    let (x, y) = c.point(d, r);
                    csv.push_str(&format!("{x},{y}\n"));
                }
                crate::fsutil::write_atomic(&path, csv.as_bytes())?;
                self.notify(format!("Saved {} points to {}", d.len(), path.display()));
            }
            Action::LoadPoints => {
                let path = self.save_dir.join(POINTS_FILE);
                let d = load_dataset(&path, &ColumnChoice::from_flags(None, None))?;
                if d.in_dim != 1 || d.out_dim != 1 {
                    return Err(MdnError::Data(format!(
                        "{}: the playground takes two columns, x and y",
                        path.display()
                    )));
                }
                let pts: Vec<(f32, f32)> = d
                    .inputs
                    .iter()
                    .copied()
                    .zip(d.targets.iter().copied())
                    .collect();
                self.switch_to(Scene::Playground)?;
                self.scene_mut().replace_points(&pts)?;
                self.notify(format!(
                    "Loaded {} points from {}",
                    pts.len(),
                    path.display()
                ));
            }
            Action::SaveSetup => {
                let path = self.save_dir.join(SETUP_FILE);
                self.setup().write(&path)?;
                self.notify(format!("Saved the setup to {}", path.display()));
            }
            _ => {}
        }
        Ok(())
    }

    fn notify(&mut self, text: String) {
        self.notice = Some((text, Instant::now()));
    }

    /// The current scene, its settings and points, as a setup file says.
    fn setup(&self) -> Setup {
        let scene = self.scene();
        let mut setup = Setup::new(self.current, scene.settings().clone());
        if self.current == Scene::Playground {
            let d = scene.data();
            setup.points = d
                .inputs
                .iter()
                .zip(&d.targets)
                .map(|(&x, &y)| [x, y])
                .collect();
        }
        if self.current == Scene::Data {
            setup.data = self.data_ref.clone();
        }
        setup
    }

    /// The plot as it is now, offscreen at the window's size (without the
    /// side panel), to a numbered PNG in the save directory.
    fn screenshot(&mut self) -> Result<PathBuf> {
        let size = self.window.inner_size();
        self.screenshots += 1;
        let path = self.save_dir.join(format!(
            "mdn-{}-{}.png",
            self.current.name(),
            self.screenshots
        ));
        let opts = RenderOptions {
            width: size.width.max(64),
            height: size.height.max(64),
            ..RenderOptions::new(self.current)
        };
        let gpu = self.gpu.clone();
        let img = render_state(&gpu, self.scene_mut(), &opts)?;
        img.write_png(&path)?;
        Ok(path)
    }

    /// One frame; `Ok(false)` when nothing was presented (minimised, or
    /// the surface had to be reconfigured).
    fn frame(&mut self) -> Result<bool> {
        let size = self.window.inner_size();
        if size.width == 0 || size.height == 0 {
            return Ok(false);
        }
        let now = Instant::now();
        let scene_id = self.current;
        let mut steps = 0;
        {
            let scene = self.scenes.get_mut(&scene_id).expect("current scene");
            if scene.data_dirty() && self.last_sync.elapsed() >= SYNC_INTERVAL {
                scene.sync_data()?;
                self.last_sync = now;
            }
            if scene.playing {
                self.step_credit += self.steps_per_frame;
                steps = self.step_credit as usize;
                self.step_credit -= steps as f32;
                scene.train(steps)?;
                if self.last_read.elapsed() >= READ_INTERVAL {
                    scene.read_loss()?;
                    self.last_read = Instant::now();
                }
            }
        }

        let raw = self.egui.take_egui_input(&self.window);
        let egui_ctx = self.egui.egui_ctx().clone();
        let mut actions = Vec::new();
        let mut settings = self.settings.clone();
        let rng = &mut self.rng;
        let mut uniform = || rng.random::<f32>();
        let scene = &self.scenes[&scene_id];
        let input = HudInput {
            scene,
            fps: self.fps,
            adapter: &self.adapter,
            steps_per_frame: if scene.playing {
                self.steps_per_frame
            } else {
                0.0
            },
            has_data: self.scenes.contains_key(&Scene::Data),
            notice: self
                .notice
                .as_ref()
                .filter(|(_, at)| at.elapsed() < NOTICE_FOR)
                .map(|(text, _)| text.as_str()),
        };
        let mut layout = None;
        let mut output = egui_ctx.run_ui(raw, |ui| {
            layout = Some(
                hud::ui(
                    ui,
                    &input,
                    &mut settings,
                    &mut uniform,
                    &mut self.stroke,
                    &mut actions,
                )
                .layout,
            );
        });
        let layout = layout.expect("the UI always runs");
        self.settings = settings;
        let platform = std::mem::take(&mut output.platform_output);
        self.egui.handle_platform_output(&self.window, platform);
        let repaint_now = output
            .viewport_output
            .get(&egui::ViewportId::ROOT)
            .is_some_and(|v| v.repaint_delay.is_zero());
        let egui_frame = EguiFrame::take(&mut output);

        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) => Some((f, false)),
            wgpu::CurrentSurfaceTexture::Suboptimal(f) => Some((f, true)),
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => None,
            wgpu::CurrentSurfaceTexture::Outdated => {
                self.surface.configure(&self.gpu.ctx.device, &self.config);
                None
            }
            wgpu::CurrentSurfaceTexture::Lost => {
                self.surface = self
                    .gpu
                    .ctx
                    .instance
                    .create_surface(Arc::clone(&self.window))
                    .map_err(|e| {
                        GpuError::Internal(format!("recreating the window surface: {e}"))
                    })?;
                self.surface.configure(&self.gpu.ctx.device, &self.config);
                None
            }
            wgpu::CurrentSurfaceTexture::Validation => {
                return Err(self
                    .gpu
                    .ctx
                    .take_gpu_error()
                    .unwrap_or_else(|| {
                        GpuError::Validation("acquiring the window's next frame".into())
                    })
                    .into());
            }
        };
        // Apply after the UI pass; a rebuilt scene draws from next frame.
        let had_actions = !actions.is_empty();
        self.apply(actions)?;
        let Some((frame, suboptimal)) = frame else {
            self.window.request_redraw();
            return Ok(false);
        };
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor {
            format: Some(self.view_format),
            ..Default::default()
        });
        let ctx = Arc::clone(&self.gpu.ctx);
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        let scene = self.scenes.get_mut(&self.current).expect("current scene");
        // While training, the curves and the sample cloud follow at a
        // steady rate rather than every frame: on a software GPU the
        // sampler's forward pass costs as much as drawing the frame.
        if !scene.playing || self.last_refresh.elapsed() >= REFRESH_INTERVAL {
            scene.encode(&mut encoder)?;
            self.last_refresh = Instant::now();
        }
        let scene = &self.scenes[&self.current];
        // A scene switched this frame was laid out for the old one.
        let layout = if scene.scene == scene_id {
            layout
        } else {
            scene.layout(layout.main.rect, layout.main.target, 1.0)
        };
        let ppp = egui_frame.pixels_per_point;
        let plots = scene.plots(&layout, ppp);
        let prepared = self.renderer.prepare(&ctx.device, &ctx.queue, &plots);
        let ui = self.egui_pass.prepare(
            &egui_ctx,
            &ctx.device,
            &ctx.queue,
            &mut encoder,
            [self.config.width, self.config.height],
            egui_frame,
        );
        {
            let mut pass = begin_pass(&mut encoder, &view, Some(colors::clear()));
            self.renderer.draw(&mut pass, &plots, &prepared);
            self.egui_pass.draw(&mut pass, &ui);
        }
        self.egui_pass.finish(ui);
        ctx.queue.submit([encoder.finish()]);
        ctx.queue.present(frame);
        ctx.check()?;
        if suboptimal {
            self.surface.configure(&ctx.device, &self.config);
        }

        self.frames += 1;
        let due: Vec<Action> = self
            .script
            .iter()
            .filter(|(f, _)| *f == self.frames)
            .map(|(_, a)| a.clone())
            .collect();
        self.apply(due)?;
        if let Some(n) = self.tour
            && self.frames.is_multiple_of(n.max(1))
        {
            let i = Scene::ALL
                .iter()
                .position(|s| *s == self.current)
                .unwrap_or(0);
            self.switch_to(Scene::ALL[(i + 1) % Scene::ALL.len()])?;
            if self.autoplay {
                self.scene_mut().set_playing(true);
            }
        }
        if self.frames == 1 {
            self.second_frame_at = Some(Instant::now());
        }
        let playing = self.scene().playing;
        if let Some(prev) = self.last_frame.replace(Instant::now()) {
            let dt = prev.elapsed().max(Duration::from_micros(100));
            let inst = 1.0 / dt.as_secs_f32();
            self.fps = if self.fps == 0.0 {
                inst
            } else {
                0.9 * self.fps + 0.1 * inst
            };
            if playing {
                // Multiplicative steps keep the frame near its budget
                // whatever one step costs on this device.
                // A frame over budget with no step in it cannot be helped
                // by fewer steps.
                self.steps_per_frame = if dt > FRAME_BUDGET && steps > 0 {
                    (self.steps_per_frame * 0.8).max(MIN_STEPS_PER_FRAME)
                } else if dt <= FRAME_BUDGET {
                    (self.steps_per_frame * 1.125 + 0.25).min(MAX_STEPS_PER_FRAME)
                } else {
                    self.steps_per_frame
                };
            }
        }
        if self.continuous || playing || repaint_now || had_actions || self.scene().data_dirty() {
            self.window.request_redraw();
        } else {
            // Idle: the next input event asks for a redraw.
            self.last_frame = None;
        }
        Ok(true)
    }
}
