//! Device creation shared by the GPU trainer, the visualizer and the tests.
//!
//! Backend and adapter choice follow wgpu's conventions (`WGPU_BACKEND`,
//! `WGPU_ADAPTER_NAME`) but are parsed here, because wgpu's own helpers either
//! ignore a misspelt backend (`Backends::from_env` warns and yields an empty
//! set) or panic on an unmatched adapter name
//! (`util::initialize_adapter_from_env_or_default`). Every failure becomes a
//! one-line [`GpuError`] that tells the user what to do next.
//!
//! Mesa's software drivers print harmless warnings (device-select, DRI2) unless
//! `XDG_RUNTIME_DIR` is set and `LIBGL_ALWAYS_SOFTWARE=1`. We deliberately do
//! not set them from here: mutating the process environment is unsound once
//! other threads run, and it would hide the user's own settings. `.ci/run`
//! exports both.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::tuned::TunedTable;

pub use crate::error::GpuError;

/// Environment variable naming the backend(s), as understood by wgpu.
pub const BACKEND_ENV: &str = "WGPU_BACKEND";
/// Environment variable holding a case-insensitive adapter-name substring.
pub const ADAPTER_ENV: &str = "WGPU_ADAPTER_NAME";
/// Environment variable that turns "no GPU, test skipped" into a failure.
pub const REQUIRE_GPU_ENV: &str = "MDN_REQUIRE_GPU";
/// The backends the GPU tests cover, comma-separated; all of them unless
/// set. A machine whose GL driver opens no device without a display
/// (NVIDIA's EGL: "Parent device is lost") runs the tests with `vulkan`.
pub const TEST_BACKENDS_ENV: &str = "MDN_TEST_BACKENDS";
/// Environment variable for [`GpuOptions::max_binding`].
pub const MAX_BINDING_ENV: &str = "MDN_GPU_MAX_BINDING";

/// `MDN_GPU_MAX_BINDING`'s value: bytes, or a number with KiB, MiB or GiB.
pub fn parse_max_binding(text: &str) -> Result<u64, GpuError> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => t.split_at(at),
        None => (t, ""),
    };
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(GpuError::BadMaxBinding(text.to_string())),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| GpuError::BadMaxBinding(text.to_string()))
}

/// The graphics API to run on (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// Every backend compiled in; the best adapter wins.
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    /// Every choice, in the order shown to users.
    pub const ALL: [BackendChoice; 5] = [
        BackendChoice::Auto,
        BackendChoice::Vulkan,
        BackendChoice::Metal,
        BackendChoice::Dx12,
        BackendChoice::Gl,
    ];

    /// The canonical (CLI) name.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        }
    }

    /// The wgpu backend set this choice enables.
    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => wgpu::Backends::all(),
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }

    fn from_backend(backend: wgpu::Backend) -> Option<BackendChoice> {
        match backend {
            wgpu::Backend::Vulkan => Some(BackendChoice::Vulkan),
            wgpu::Backend::Metal => Some(BackendChoice::Metal),
            wgpu::Backend::Dx12 => Some(BackendChoice::Dx12),
            wgpu::Backend::Gl => Some(BackendChoice::Gl),
            _ => None,
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendChoice {
    type Err = GpuError;

    /// Accepts the CLI names and wgpu's aliases (`vk`, `mtl`, `d3d12`,
    /// `gles`, `opengl`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "all" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" | "mtl" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            _ => Err(GpuError::UnknownBackend(s.trim().to_string())),
        }
    }
}

/// How to pick the device. `None` fields are taken from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// `--backend`; else `WGPU_BACKEND`; else every backend.
    pub backend: Option<BackendChoice>,
    /// `--adapter`; else `WGPU_ADAPTER_NAME`; case-insensitive substring of
    /// the adapter name.
    pub adapter: Option<String>,
    /// Caps storage bindings below the adapter's own (bytes); else
    /// `MDN_GPU_MAX_BINDING`. Everything sized from the device's limits
    /// follows: a sweep's models split over more trainers, data is streamed
    /// sooner. For seeing on a large GPU what a small one does (the tests
    /// that check those paths use lavapipe's 128 MiB everywhere).
    pub max_binding: Option<u64>,
    /// Kernel configurations measured on this machine (`mdn tune`), used
    /// by the trainers built on the device for the jobs they were
    /// measured for. `None`: the adapter's defaults. The command line
    /// reads [`super::tuned::default_path`]; the library never reads a
    /// file unasked.
    pub tuned: Option<Arc<TunedTable>>,
}

/// The backends to try, with a label for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedBackends {
    pub backends: wgpu::Backends,
    /// What the user asked for, quoted for messages: `` `vulkan` `` or
    /// `` `vulkan,gl` from WGPU_BACKEND ``.
    pub label: String,
}

/// Decides which backends to use from an explicit choice and the value of
/// `WGPU_BACKEND` (passed in, so this stays pure and testable).
///
/// The variable may be a comma list, as wgpu allows (`vulkan,gl`). An empty
/// value counts as unset, which is how people usually clear it.
pub fn resolve_backends(
    explicit: Option<BackendChoice>,
    env: Option<&str>,
) -> Result<ResolvedBackends, GpuError> {
    if let Some(choice) = explicit {
        return Ok(ResolvedBackends {
            backends: choice.backends(),
            label: format!("`{}`", choice.name()),
        });
    }
    let Some(value) = env.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(ResolvedBackends {
            backends: wgpu::Backends::all(),
            label: format!("`{}`", BackendChoice::Auto.name()),
        });
    };
    let unknown = |name: String| GpuError::UnknownBackendEnv {
        name,
        value: value.to_string(),
    };
    let choices = parse_backend_list(value).map_err(unknown)?;
    let Some(backends) = choices.iter().map(|c| c.backends()).reduce(|a, b| a | b) else {
        // Only commas: there is nothing sensible to guess.
        return Err(unknown(value.to_string()));
    };
    let names: Vec<&str> = choices.iter().map(|c| c.name()).collect();
    Ok(ResolvedBackends {
        backends,
        label: format!("`{}` from {BACKEND_ENV}", names.join(",")),
    })
}

/// The backends a comma-separated list names (`WGPU_BACKEND`,
/// `MDN_TEST_BACKENDS`), each once, in the order first named; empty parts
/// are skipped. `Err` holds the first part that names no backend.
fn parse_backend_list(value: &str) -> Result<Vec<BackendChoice>, String> {
    let mut choices = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let choice: BackendChoice = part.parse().map_err(|_| part.to_string())?;
        if !choices.contains(&choice) {
            choices.push(choice);
        }
    }
    Ok(choices)
}

/// The adapter-name filter: explicit first, else `WGPU_ADAPTER_NAME`; an
/// empty value means "any adapter". Returned lowercased for matching.
pub fn resolve_adapter_filter(explicit: Option<&str>, env: Option<&str>) -> Option<String> {
    explicit
        .or(env)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
}

/// Case-insensitive substring match; `filter` must already be lowercase.
pub fn adapter_matches(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.to_lowercase().contains(f))
}

/// Sort key: lower is better. Hardware beats software, and among equals the
/// native APIs beat GL, whose compute limits are lower (16 storage buffers
/// per stage on llvmpipe, no subgroups).
pub fn adapter_rank(device_type: wgpu::DeviceType, backend: wgpu::Backend) -> (u8, u8) {
    let ty = match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (ty, api)
}

/// Reads a variable, treating non-Unicode values like unset ones rather
/// than failing: wgpu does the same.
fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// wgpu's error texts span several indented lines ("Validation Error",
/// "Caused by:", nested causes); users get one line per error.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && *l != "Caused by:"
                && !l.eq_ignore_ascii_case("validation error")
                && !l.eq_ignore_ascii_case("internal error")
                && !l.eq_ignore_ascii_case("out of memory")
        })
        .collect::<Vec<_>>()
        .join(": ")
}

impl GpuError {
    fn from_uncaptured(err: &wgpu::Error) -> GpuError {
        match err {
            wgpu::Error::Validation { description, .. } => {
                GpuError::Validation(one_line(description))
            }
            wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(one_line(&err.to_string())),
            wgpu::Error::Internal { description, .. } => GpuError::Internal(one_line(description)),
        }
    }
}

/// A short, unique-enough label for an adapter in error messages.
fn adapter_label(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({})", info.name, backend_name(info.backend))
}

fn backend_name(backend: wgpu::Backend) -> String {
    BackendChoice::from_backend(backend)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("{backend:?}").to_lowercase())
}

fn device_type_name(ty: wgpu::DeviceType) -> &'static str {
    match ty {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// An open device with its queue, and where it came from.
pub struct GpuContext {
    /// Kept so the visualizer can create surfaces on the same instance.
    pub instance: wgpu::Instance,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    /// From [`GpuOptions::tuned`]: see [`super::Kernels::for_job`].
    pub tuned: Option<Arc<TunedTable>>,
    /// First uncaptured error or device loss. The first is kept because later
    /// errors usually cascade from it (an invalid pipeline invalidates every
    /// pass that uses it).
    error: Arc<Mutex<Option<GpuError>>>,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

/// Creates an instance for the backends `opts` resolves to. `display` is the
/// window system's display handle; GL needs it to present to a window, and
/// compute-only users pass `None`.
pub fn create_instance(
    opts: &GpuOptions,
    display: Option<Box<dyn wgpu::wgt::WgpuHasDisplayHandle>>,
) -> Result<wgpu::Instance, GpuError> {
    let resolved = resolve_backends(opts.backend, env_var(BACKEND_ENV).as_deref())?;
    check_compiled_in(&resolved)?;
    if resolved.backends.contains(wgpu::Backends::VULKAN) {
        keep_vulkan_loaded();
    }
    Ok(wgpu::Instance::new(instance_descriptor(
        resolved.backends,
        display,
    )))
}

fn instance_descriptor(
    backends: wgpu::Backends,
    display: Option<Box<dyn wgpu::wgt::WgpuHasDisplayHandle>>,
) -> wgpu::InstanceDescriptor {
    wgpu::InstanceDescriptor {
        backends,
        // Honour WGPU_VALIDATION / WGPU_DEBUG and the GL/DX12 backend options
        // like every other wgpu program, but never WGPU_BACKEND: that is ours.
        flags: wgpu::InstanceFlags::from_build_config().with_env(),
        memory_budget_thresholds: wgpu::MemoryBudgetThresholds::default(),
        backend_options: wgpu::BackendOptions::from_env_or_default(),
        display,
    }
}

/// Holds one Vulkan instance from a process's first context to its end.
/// Dropping a process's last Vulkan instance unloads the Vulkan loader and
/// the driver with it, while threads that called into the driver may still
/// run its code at their exit. On an NVIDIA H200 (driver 580.159) a test
/// binary that opens and drops contexts on many threads crashed at a
/// thread's exit, at an address in no loaded library; lavapipe never did.
/// (Contexts keep instances of their own: a GL instance's EGL context can
/// be current on one thread only, so instances are not shared.)
fn keep_vulkan_loaded() {
    static ANCHOR: OnceLock<wgpu::Instance> = OnceLock::new();
    ANCHOR.get_or_init(|| wgpu::Instance::new(instance_descriptor(wgpu::Backends::VULKAN, None)));
}

fn check_compiled_in(resolved: &ResolvedBackends) -> Result<(), GpuError> {
    let compiled = wgpu::Instance::enabled_backend_features();
    if resolved.backends.intersects(compiled) {
        return Ok(());
    }
    let available = BackendChoice::ALL
        .iter()
        .filter(|c| **c != BackendChoice::Auto && compiled.contains(c.backends()))
        .map(|c| c.name().to_string())
        .collect();
    Err(GpuError::BackendUnavailable {
        requested: resolved.label.clone(),
        available,
    })
}

impl GpuContext {
    /// Opens the best adapter allowed by `opts` and the environment.
    pub fn new(opts: &GpuOptions) -> Result<GpuContext, GpuError> {
        let instance = create_instance(opts, None)?;
        GpuContext::from_instance(instance, opts, None)
    }

    /// Opens a device on `instance` (made by [`create_instance`]). With a
    /// surface, only adapters that can present to it are considered.
    pub fn from_instance(
        instance: wgpu::Instance,
        opts: &GpuOptions,
        surface: Option<&wgpu::Surface<'_>>,
    ) -> Result<GpuContext, GpuError> {
        let resolved = resolve_backends(opts.backend, env_var(BACKEND_ENV).as_deref())?;
        let env_adapter = env_var(ADAPTER_ENV);
        let filter = resolve_adapter_filter(opts.adapter.as_deref(), env_adapter.as_deref());
        let adapter = pick_adapter(&instance, &resolved, filter.as_deref(), surface)?;
        let info = adapter.get_info();

        // The adapter's own limits, not wgpu's portable defaults: those cap
        // storage bindings at 128 MiB, too small for large datasets.
        let mut required_limits = adapter.limits();
        let cap = match opts.max_binding {
            Some(cap) => Some(cap),
            None => env_var(MAX_BINDING_ENV)
                .map(|v| parse_max_binding(&v))
                .transpose()?,
        };
        if let Some(cap) = cap {
            let own = &mut required_limits.max_storage_buffer_binding_size;
            *own = (*own).min(cap);
        }
        // Timestamp queries only serve `GpuTrainer::profile` (`mdn bench
        // --profile`); asking for them costs nothing where they exist.
        let required_features =
            adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY);
        let desc = wgpu::DeviceDescriptor {
            label: Some("mdn device"),
            required_features,
            required_limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| GpuError::RequestDevice(format!("{}: {}", adapter_label(&info), e)))?;

        let error: Arc<Mutex<Option<GpuError>>> = Arc::default();
        let sink = Arc::clone(&error);
        // wgpu's default handler panics; we record instead so callers can
        // return the error through the CLI's normal error path.
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            record(&sink, GpuError::from_uncaptured(&err));
        }));
        let sink = Arc::clone(&error);
        device.set_device_lost_callback(move |reason, message| {
            // `Destroyed` is our own doing (the device was dropped or
            // destroyed on purpose), not a failure.
            if reason != wgpu::DeviceLostReason::Destroyed {
                record(&sink, GpuError::DeviceLost(one_line(&message)));
            }
        });

        Ok(GpuContext {
            instance,
            device,
            queue,
            adapter,
            info,
            tuned: opts.tuned.clone(),
            error,
        })
    }

    /// The first recorded uncaptured error or device loss, as a message;
    /// clears it.
    pub fn take_error(&self) -> Option<String> {
        self.take_gpu_error().map(|e| e.to_string())
    }

    /// The first recorded uncaptured error or device loss; clears it.
    pub fn take_gpu_error(&self) -> Option<GpuError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// `Err` with the first recorded error, if any; clears it. Call after
    /// creating pipelines or submitting work. wgpu-core reports validation
    /// errors synchronously, so no poll is needed for those; a device loss
    /// shows up only after a poll.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.take_gpu_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until the queue has finished all submitted work. A recorded
    /// error (validation, device loss) is reported before the wait's own,
    /// which it usually explains; `what` names the work in the message.
    pub fn wait_idle(&self, what: &str) -> Result<(), GpuError> {
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        self.check()?;
        polled
            .map(|_| ())
            .map_err(|e| GpuError::Internal(format!("waiting for {what}: {e}")))
    }

    /// A one-line description, e.g. for progress output and bench rows.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.info.name,
            backend_name(self.info.backend),
            device_type_name(self.info.device_type)
        )
    }

    /// The canonical backend name of the open device.
    pub fn backend_name(&self) -> String {
        backend_name(self.info.backend)
    }
}

fn record(sink: &Mutex<Option<GpuError>>, err: GpuError) {
    let mut slot = sink.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(err);
    }
}

fn pick_adapter(
    instance: &wgpu::Instance,
    resolved: &ResolvedBackends,
    filter: Option<&str>,
    surface: Option<&wgpu::Surface<'_>>,
) -> Result<wgpu::Adapter, GpuError> {
    let adapters = pollster::block_on(instance.enumerate_adapters(resolved.backends));
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter {
            backend: resolved.label.clone(),
            available: list_adapters().iter().map(AdapterSummary::label).collect(),
        });
    }
    let labels: Vec<String> = adapters
        .iter()
        .map(|a| adapter_label(&a.get_info()))
        .collect();
    let matching: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| adapter_matches(&a.get_info().name, filter))
        .filter(|a| surface.is_none_or(|s| a.is_surface_supported(s)))
        .collect();
    if matching.is_empty() {
        return Err(match filter {
            Some(substr) => GpuError::AdapterNotMatched {
                substr: substr.to_string(),
                available: labels,
            },
            // Only the surface filter can empty the list without a name filter.
            None => GpuError::NoAdapter {
                backend: format!("{} able to present to this window", resolved.label),
                available: labels,
            },
        });
    }
    let compute_labels: Vec<String> = matching
        .iter()
        .map(|a| adapter_label(&a.get_info()))
        .collect();
    let mut usable: Vec<wgpu::Adapter> = matching
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    // Stable sort: among equal ranks wgpu's enumeration order decides.
    usable.sort_by_key(|a| {
        let info = a.get_info();
        adapter_rank(info.device_type, info.backend)
    });
    usable.into_iter().next().ok_or(GpuError::NoComputeSupport {
        adapters: compute_labels,
    })
}

/// One adapter as `mdn adapters` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
}

impl AdapterSummary {
    fn from_info(info: &wgpu::AdapterInfo) -> AdapterSummary {
        AdapterSummary {
            name: info.name.clone(),
            backend: backend_name(info.backend),
            device_type: device_type_name(info.device_type).to_string(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            vendor: info.vendor,
            device: info.device,
        }
    }

    /// `name (backend)`, as used in error messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.backend)
    }

    /// The header line matching the rows printed by `Display`.
    pub fn table_header() -> String {
        format!(
            "{:<7} {:<10} {:<6} {:<6} {:<40} {}",
            "backend", "type", "vendor", "device", "name", "driver"
        )
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = match (self.driver.is_empty(), self.driver_info.is_empty()) {
            (false, false) => format!("{} {}", self.driver, self.driver_info),
            (false, true) => self.driver.clone(),
            (true, false) => self.driver_info.clone(),
            (true, true) => "-".to_string(),
        };
        write!(
            f,
            "{:<7} {:<10} {:<#6x} {:<#6x} {:<40} {}",
            self.backend, self.device_type, self.vendor, self.device, self.name, driver
        )
    }
}

/// Whether the adapter is a software rasteriser (lavapipe, llvmpipe, WARP):
/// it gets the CPU-driver kernels, and `--device auto` trains on the CPU
/// trainer instead, which is far faster on the same cores.
pub fn is_software_adapter(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Every adapter of every backend compiled in, whatever `WGPU_BACKEND` says,
/// so users can see what they could choose.
pub fn list_adapters() -> Vec<AdapterSummary> {
    list_adapters_on(wgpu::Backends::all())
}

/// The adapters of the given backends only (`mdn --backend gl adapters`).
pub fn list_adapters_on(backends: wgpu::Backends) -> Vec<AdapterSummary> {
    let instance = wgpu::Instance::new(instance_descriptor(wgpu::Backends::all(), None));
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| AdapterSummary::from_info(&a.get_info()))
        .collect()
}

/// Whether `MDN_REQUIRE_GPU=1`: then a missing adapter fails tests instead of
/// skipping them.
pub fn require_gpu() -> bool {
    env_var(REQUIRE_GPU_ENV).is_some_and(|v| v.trim() == "1")
}

/// Whether the GPU tests cover `backend` ([`TEST_BACKENDS_ENV`]). A name
/// that is no backend panics: a typo must not turn tests off.
pub fn tests_cover(backend: BackendChoice) -> bool {
    let Some(list) = env_var(TEST_BACKENDS_ENV) else {
        return true;
    };
    parse_backend_list(&list)
        .unwrap_or_else(|part| panic!("{TEST_BACKENDS_ENV}={list}: {part} is no backend"))
        .contains(&backend)
}

/// A context for tests, honouring the environment. See [`test_context_with`].
pub fn test_context() -> Option<GpuContext> {
    test_context_with(&GpuOptions::default())
}

/// A context for tests. Without one, the test should return early: this
/// prints a loud skip notice, or panics under `MDN_REQUIRE_GPU=1` so CI
/// cannot pass by skipping.
pub fn test_context_with(opts: &GpuOptions) -> Option<GpuContext> {
    if let Some(backend) = opts.backend.filter(|&b| !tests_cover(b)) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED ({backend} is not in {TEST_BACKENDS_ENV})"
        );
        return None;
    }
    match GpuContext::new(opts) {
        Ok(ctx) => Some(ctx),
        Err(e) if require_gpu() => panic!("{REQUIRE_GPU_ENV}=1 but no GPU context: {e}"),
        Err(e) => {
            // Straight to the stream: the test harness captures `eprintln!`
            // of passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no GPU adapter): {e}; set {REQUIRE_GPU_ENV}=1 to make this fail"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_binding_takes_bytes_or_binary_units() {
        for (text, bytes) in [
            ("134217728", 128u64 << 20),
            ("128MiB", 128 << 20),
            (" 2 GiB ", 2 << 30),
            ("64kib", 64 << 10),
            ("4096B", 4096),
        ] {
            assert_eq!(parse_max_binding(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "0",
            "lots",
            "128MB",
            "-5",
            "1.5GiB",
            "99999999999999GiB",
        ] {
            let err = parse_max_binding(bad).unwrap_err();
            assert!(
                err.to_string().contains("MDN_GPU_MAX_BINDING"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn parses_canonical_names_and_wgpu_aliases() {
        let cases = [
            ("auto", BackendChoice::Auto),
            ("all", BackendChoice::Auto),
            ("vulkan", BackendChoice::Vulkan),
            ("VK", BackendChoice::Vulkan),
            ("metal", BackendChoice::Metal),
            ("mtl", BackendChoice::Metal),
            ("dx12", BackendChoice::Dx12),
            ("d3d12", BackendChoice::Dx12),
            ("gl", BackendChoice::Gl),
            ("gles", BackendChoice::Gl),
            (" OpenGL ", BackendChoice::Gl),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<BackendChoice>().unwrap(), want, "{text:?}");
        }
    }

    /// The command line's spelling is checked against this one in
    /// `cli/choices.rs`.
    #[test]
    fn display_round_trips_through_from_str() {
        for choice in BackendChoice::ALL {
            assert_eq!(choice.to_string().parse::<BackendChoice>().unwrap(), choice);
        }
    }

    #[test]
    fn unknown_backend_error_lists_valid_names() {
        let err = "vulkn".parse::<BackendChoice>().unwrap_err();
        assert_eq!(err, GpuError::UnknownBackend("vulkn".into()));
        let msg = err.to_string();
        for name in ["vulkn", "auto", "vulkan", "metal", "dx12", "gl"] {
            assert!(msg.contains(name), "{msg}");
        }
        assert!(!msg.contains('\n'));
    }

    /// One parser for `WGPU_BACKEND` and `MDN_TEST_BACKENDS`: aliases and
    /// repeats name a backend once, blanks are skipped, and the first part
    /// that is no backend is the error.
    #[test]
    fn backend_lists() {
        use BackendChoice::*;
        assert_eq!(
            parse_backend_list(" vk, gl ,vulkan,,"),
            Ok(vec![Vulkan, Gl])
        );
        assert_eq!(parse_backend_list(",,"), Ok(vec![]));
        assert_eq!(parse_backend_list("gl,cuda,foo"), Err("cuda".to_string()));
    }

    #[test]
    fn backend_sets() {
        assert_eq!(BackendChoice::Auto.backends(), wgpu::Backends::all());
        assert_eq!(BackendChoice::Vulkan.backends(), wgpu::Backends::VULKAN);
        assert_eq!(BackendChoice::Gl.backends(), wgpu::Backends::GL);
    }

    #[test]
    fn explicit_backend_beats_env() {
        let r = resolve_backends(Some(BackendChoice::Gl), Some("vulkan")).unwrap();
        assert_eq!(r.backends, wgpu::Backends::GL);
        assert_eq!(r.label, "`gl`");
        // Even a broken env value is irrelevant once the user chose.
        assert!(resolve_backends(Some(BackendChoice::Vulkan), Some("nonsense")).is_ok());
    }

    #[test]
    fn env_backend_used_when_no_explicit_choice() {
        let r = resolve_backends(None, Some("vk")).unwrap();
        assert_eq!(r.backends, wgpu::Backends::VULKAN);
        assert_eq!(r.label, "`vulkan` from WGPU_BACKEND");
        let r = resolve_backends(None, Some("Vulkan, gles")).unwrap();
        assert_eq!(r.backends, wgpu::Backends::VULKAN | wgpu::Backends::GL);
        assert_eq!(r.label, "`vulkan,gl` from WGPU_BACKEND");
    }

    #[test]
    fn unset_or_empty_env_means_every_backend() {
        for env in [None, Some(""), Some("  ")] {
            let r = resolve_backends(None, env).unwrap();
            assert_eq!(r.backends, wgpu::Backends::all(), "{env:?}");
            assert_eq!(r.label, "`auto`");
        }
    }

    #[test]
    fn unknown_env_backend_is_an_error_not_an_empty_set() {
        for env in ["cuda", "vulkan,cuda", ","] {
            let err = resolve_backends(None, Some(env)).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, GpuError::UnknownBackendEnv { .. }),
                "{env}: {msg}"
            );
            assert!(msg.contains("WGPU_BACKEND"), "{msg}");
            assert!(msg.contains("vulkan, metal, dx12, gl"), "{msg}");
        }
    }

    #[test]
    fn adapter_filter_resolution() {
        assert_eq!(resolve_adapter_filter(None, None), None);
        assert_eq!(resolve_adapter_filter(None, Some("")), None);
        assert_eq!(
            resolve_adapter_filter(None, Some("LLVMpipe")).as_deref(),
            Some("llvmpipe")
        );
        assert_eq!(
            resolve_adapter_filter(Some("NVIDIA"), Some("llvmpipe")).as_deref(),
            Some("nvidia")
        );
        // An explicit empty filter means "any", overriding the env.
        assert_eq!(resolve_adapter_filter(Some(""), Some("llvmpipe")), None);
    }

    #[test]
    fn adapter_matching_is_case_insensitive_substring() {
        let name = "llvmpipe (LLVM 15.0.6, 256 bits)";
        assert!(adapter_matches(name, None));
        assert!(adapter_matches(name, Some("llvm 15")));
        assert!(!adapter_matches(name, Some("nvidia")));
    }

    #[test]
    fn hardware_and_native_apis_rank_first() {
        use wgpu::{Backend as B, DeviceType as T};
        let mut all = vec![
            (T::Cpu, B::Gl),
            (T::Cpu, B::Vulkan),
            (T::IntegratedGpu, B::Gl),
            (T::DiscreteGpu, B::Vulkan),
            (T::IntegratedGpu, B::Vulkan),
        ];
        all.sort_by_key(|(t, b)| adapter_rank(*t, *b));
        assert_eq!(
            all,
            [
                (T::DiscreteGpu, B::Vulkan),
                (T::IntegratedGpu, B::Vulkan),
                (T::IntegratedGpu, B::Gl),
                (T::Cpu, B::Vulkan),
                (T::Cpu, B::Gl),
            ]
        );
    }

    #[test]
    fn wgpu_error_text_becomes_one_line() {
        let text = "Validation Error\n\nCaused by:\n  In Device::create_buffer, label = 'x'\n    \
                    Buffer size 10 is too big\n";
        assert_eq!(
            one_line(text),
            "In Device::create_buffer, label = 'x': Buffer size 10 is too big"
        );
    }

    #[test]
    fn user_messages_are_single_lines_that_say_what_to_do() {
        let available = vec!["llvmpipe (vulkan)".to_string(), "llvmpipe (gl)".to_string()];
        let errors = [
            GpuError::NoAdapter {
                backend: "`vulkan`".into(),
                available: available.clone(),
            },
            GpuError::AdapterNotMatched {
                substr: "nvidia".into(),
                available: available.clone(),
            },
            GpuError::BackendUnavailable {
                requested: "`metal`".into(),
                available: vec!["vulkan".into(), "gl".into()],
            },
        ];
        for err in errors {
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("vulkan"), "{msg}");
        }
        let msg = GpuError::NoAdapter {
            backend: "`vulkan`".into(),
            available: vec![],
        }
        .to_string();
        assert!(msg.contains("available: none"), "{msg}");
        assert!(msg.contains("mdn adapters"), "{msg}");
    }

    #[test]
    fn adapter_row_is_one_line_with_every_field() {
        let row = AdapterSummary {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "vulkan".into(),
            device_type: "cpu".into(),
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6".into(),
            vendor: 0x10005,
            device: 0,
        };
        let text = row.to_string();
        assert!(!text.contains('\n'));
        for part in ["vulkan", "cpu", "0x10005", "llvmpipe (LLVM", "Mesa 22.3.6"] {
            assert!(text.contains(part), "{text}");
        }
        assert_eq!(row.label(), "llvmpipe (LLVM 15.0.6, 256 bits) (vulkan)");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["vendor"], 0x10005);
        assert_eq!(json["driver_info"], "Mesa 22.3.6");
    }
}
