//! Device creation on real adapters: lavapipe (Vulkan) and llvmpipe (GL via
//! EGL) in CI and on development machines without a GPU. Each test skips
//! loudly without an adapter, and fails instead under `MDN_REQUIRE_GPU=1`.

use mdn::gpu::context::{
    BackendChoice, GpuContext, GpuError, GpuOptions, list_adapters, require_gpu, test_context_with,
    tests_cover,
};
use std::io::Write;
use wgpu::util::DeviceExt;

/// Like `test_context_with`'s notice: written past the harness's capture.
fn skipped(e: &GpuError) {
    let _ = writeln!(std::io::stderr(), "SKIPPED (no GPU adapter): {e}");
}

/// A context on exactly this backend. The explicit empty adapter filter
/// overrides any `WGPU_ADAPTER_NAME` in the caller's environment, which could
/// otherwise exclude the only adapter of this backend.
fn context_on(backend: BackendChoice) -> Option<GpuContext> {
    test_context_with(&GpuOptions {
        backend: Some(backend),
        adapter: Some(String::new()),
        ..Default::default()
    })
}

fn expected_backend(choice: BackendChoice) -> wgpu::Backend {
    match choice {
        BackendChoice::Vulkan => wgpu::Backend::Vulkan,
        BackendChoice::Gl => wgpu::Backend::Gl,
        other => panic!("no single wgpu backend for {other}"),
    }
}

fn opens_device_on(choice: BackendChoice) {
    let Some(ctx) = context_on(choice) else {
        return;
    };
    assert_eq!(ctx.info.backend, expected_backend(choice), "{ctx:?}");
    // We ask for the adapter's own limits; anything less would silently cap
    // the storage buffers the trainer may bind.
    assert_eq!(ctx.device.limits(), ctx.adapter.limits());
    assert_eq!(ctx.check(), Ok(()));
    eprintln!("{choice}: {}", ctx.describe());
}

/// `GpuOptions::max_binding` caps the storage binding the device is asked
/// for (what the buffers are sized from); the adapter's own stays as it is.
#[test]
fn max_binding_caps_the_device_limit() {
    let cap = 64 << 20;
    let Some(ctx) = test_context_with(&GpuOptions {
        backend: Some(BackendChoice::Vulkan),
        adapter: Some(String::new()),
        max_binding: Some(cap),
        tuned: None,
    }) else {
        return;
    };
    let own = ctx.adapter.limits().max_storage_buffer_binding_size;
    assert_eq!(
        ctx.device.limits().max_storage_buffer_binding_size,
        own.min(cap)
    );
    assert!(own > cap, "{own}");
}

#[test]
fn vulkan_context_opens() {
    opens_device_on(BackendChoice::Vulkan);
}

#[test]
fn gl_context_opens() {
    opens_device_on(BackendChoice::Gl);
}

#[test]
fn list_adapters_shows_every_backend_a_context_can_open() {
    let listed = list_adapters();
    for row in &listed {
        eprintln!("{row}");
    }
    for choice in [BackendChoice::Vulkan, BackendChoice::Gl] {
        let Some(ctx) = context_on(choice) else {
            continue;
        };
        let want = choice.to_string();
        assert!(
            listed
                .iter()
                .any(|a| a.backend == want && a.name == ctx.info.name),
            "{} missing from list_adapters(): {listed:?}",
            ctx.describe()
        );
    }
}

#[test]
fn unmatched_adapter_name_lists_the_available_ones() {
    let opts = GpuOptions {
        backend: Some(BackendChoice::Auto),
        adapter: Some("No-Such-Adapter-zz9".into()),
        ..Default::default()
    };
    match GpuContext::new(&opts) {
        Err(GpuError::AdapterNotMatched { substr, available }) => {
            assert_eq!(substr, "no-such-adapter-zz9");
            assert!(!available.is_empty());
            let listed: Vec<String> = list_adapters().iter().map(|a| a.label()).collect();
            for label in &available {
                assert!(listed.contains(label), "{label} not in {listed:?}");
            }
            let msg = GpuError::AdapterNotMatched { substr, available }.to_string();
            eprintln!("{msg}");
            assert!(msg.contains("mdn adapters"), "{msg}");
        }
        Err(e @ GpuError::NoAdapter { .. }) if !require_gpu() => {
            skipped(&e);
        }
        Err(e) => panic!("expected AdapterNotMatched, got: {e}"),
        Ok(ctx) => panic!("no adapter should match, yet got {}", ctx.describe()),
    }
}

#[test]
fn unmatched_adapter_name_with_a_backend_lists_that_backends_adapters() {
    let opts = GpuOptions {
        backend: Some(BackendChoice::Vulkan),
        adapter: Some("No-Such-Adapter-zz9".into()),
        ..Default::default()
    };
    match GpuContext::new(&opts) {
        Err(GpuError::AdapterNotMatched { available, .. }) => {
            assert!(
                available.iter().all(|a| a.ends_with("(vulkan)")),
                "{available:?}"
            );
        }
        Err(e @ GpuError::NoAdapter { .. }) if !require_gpu() => {
            skipped(&e);
        }
        Err(e) => panic!("expected AdapterNotMatched, got: {e}"),
        Ok(ctx) => panic!("no adapter should match, yet got {}", ctx.describe()),
    }
}

const DOUBLE_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> data: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    // The last workgroup runs past the end; those invocations must not write.
    if (id.x >= arrayLength(&data)) {
        return;
    }
    data[id.x] = 2.0 * data[id.x];
}
"#;

/// Doubles `n` floats in place, bound as the first `n` elements of a larger
/// buffer whose tail holds sentinels: the tail proves the bounds guard and
/// the binding size are honoured. Returns the whole buffer.
fn double_on_gpu(ctx: &GpuContext, input: &[f32], tail: usize) -> Vec<f32> {
    let device = &ctx.device;
    let mut contents = input.to_vec();
    contents.extend(std::iter::repeat_n(-7.0f32, tail));
    let bytes = std::mem::size_of_val(contents.as_slice()) as u64;
    let data = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("data"),
        contents: bytemuck::cast_slice(&contents),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("double"),
        source: wgpu::ShaderSource::Wgsl(DOUBLE_WGSL.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("double"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bound = std::mem::size_of_val(input) as u64;
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("double"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &data,
                offset: 0,
                size: wgpu::BufferSize::new(bound),
            }),
        }],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(input.len().div_ceil(64) as u32, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&data, 0, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);

    staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("map staging"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    ctx.check().expect("no GPU error");
    let out = bytemuck::cast_slice(&staging.get_mapped_range(..).expect("mapped range")).to_vec();
    staging.unmap();
    out
}

fn doubles_floats_on(choice: BackendChoice) {
    let Some(ctx) = context_on(choice) else {
        return;
    };
    // 1000 is not a multiple of the workgroup size 64, so the last workgroup
    // is partial; the values are exact in f32 so the check can be exact too.
    let n = 1000;
    let tail = 24;
    let input: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 100.0).collect();
    let out = double_on_gpu(&ctx, &input, tail);
    assert_eq!(out.len(), n + tail);
    for (i, (&x, &y)) in input.iter().zip(&out).enumerate() {
        assert_eq!(y, 2.0 * x, "element {i} on {}", ctx.describe());
    }
    assert!(
        out[n..].iter().all(|&v| v == -7.0),
        "wrote past the binding on {}: {:?}",
        ctx.describe(),
        &out[n..]
    );
}

#[test]
fn doubles_floats_on_vulkan() {
    doubles_floats_on(BackendChoice::Vulkan);
}

#[test]
fn doubles_floats_on_gl() {
    doubles_floats_on(BackendChoice::Gl);
}

fn validation_error_is_recorded_on(choice: BackendChoice) {
    let Some(ctx) = context_on(choice) else {
        return;
    };
    // MAP_READ may only be combined with COPY_DST; wgpu's default handler
    // would panic here.
    let _bad = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bad usage"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    match ctx.check() {
        Err(GpuError::Validation(msg)) => {
            eprintln!("{choice}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("bad usage"), "{msg}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // The error is taken, not sticky: the device stays usable.
    assert_eq!(ctx.take_error(), None);
    let out = double_on_gpu(&ctx, &[1.5, -3.0], 0);
    assert_eq!(out, [3.0, -6.0]);
}

#[test]
fn validation_error_is_recorded_on_vulkan() {
    validation_error_is_recorded_on(BackendChoice::Vulkan);
}

#[test]
fn validation_error_is_recorded_on_gl() {
    validation_error_is_recorded_on(BackendChoice::Gl);
}

/// Run with `--nocapture` to see the limits that shape kernel design.
#[test]
fn limits_are_enough_for_the_trainer() {
    for choice in [BackendChoice::Vulkan, BackendChoice::Gl] {
        let Some(ctx) = context_on(choice) else {
            continue;
        };
        let l = ctx.device.limits();
        let f = ctx.device.features();
        println!("{choice}: {}", ctx.describe());
        println!("  driver {} {}", ctx.info.driver, ctx.info.driver_info);
        println!(
            "  max_storage_buffer_binding_size {} ({} MiB), max_buffer_size {} ({} MiB)",
            l.max_storage_buffer_binding_size,
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size,
            l.max_buffer_size >> 20
        );
        println!(
            "  max_storage_buffers_per_shader_stage {}, max_uniform_buffers_per_shader_stage {}, \
             max_bind_groups {}, max_bindings_per_bind_group {}",
            l.max_storage_buffers_per_shader_stage,
            l.max_uniform_buffers_per_shader_stage,
            l.max_bind_groups,
            l.max_bindings_per_bind_group
        );
        println!(
            "  max_compute_invocations_per_workgroup {}, workgroup size {}x{}x{}, \
             workgroup storage {} B, workgroups per dimension {}",
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_workgroup_storage_size,
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "  subgroup feature {}, subgroup size {}..{}, immediate size {}",
            f.contains(wgpu::Features::SUBGROUP),
            ctx.info.subgroup_min_size,
            ctx.info.subgroup_max_size,
            l.max_immediate_size
        );
        // What the trainer's kernels assume: an Adam step binds four
        // parameter-sized buffers plus a uniform, and the matmul kernels use
        // 256-invocation workgroups.
        assert!(
            l.max_storage_buffers_per_shader_stage >= 8,
            "{choice}: {l:?}"
        );
        assert!(
            l.max_compute_invocations_per_workgroup >= 256,
            "{choice}: {l:?}"
        );
        assert!(
            l.max_storage_buffer_binding_size >= 128 << 20,
            "{choice}: {l:?}"
        );
    }
}

/// Set in a child process of this test binary: which outcome the child must
/// see. Spawning keeps the environment of the parallel tests untouched.
const CHILD_EXPECT: &str = "MDN_TEST_CHILD_EXPECT";

/// `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` really are read, end to end.
#[test]
fn environment_selects_backend_and_adapter() {
    if let Ok(expect) = std::env::var(CHILD_EXPECT) {
        let result = GpuContext::new(&GpuOptions::default());
        match (expect.as_str(), result) {
            ("vulkan", Ok(ctx)) => assert_eq!(ctx.info.backend, wgpu::Backend::Vulkan),
            ("gl", Ok(ctx)) => assert_eq!(ctx.info.backend, wgpu::Backend::Gl),
            ("unknown-backend", Err(GpuError::UnknownBackendEnv { name, .. })) => {
                assert_eq!(name, "cuda")
            }
            ("not-matched", Err(GpuError::AdapterNotMatched { substr, .. })) => {
                assert_eq!(substr, "no-such-adapter-zz9")
            }
            (_, Err(e @ GpuError::NoAdapter { .. })) if !require_gpu() => {
                skipped(&e);
            }
            (want, got) => panic!("expected {want}, got {got:?}"),
        }
        return;
    }
    let mut cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("vulkan", vec![("WGPU_BACKEND", "vk".into())]),
        ("gl", vec![("WGPU_BACKEND", "GLES".into())]),
        (
            "unknown-backend",
            vec![("WGPU_BACKEND", "vulkan,cuda".into())],
        ),
        (
            "not-matched",
            vec![("WGPU_ADAPTER_NAME", "no-such-adapter-zz9".into())],
        ),
    ];
    // The adapter filter must narrow a two-backend request down to one
    // adapter, matched case-insensitively; names differ between machines.
    if let Some(vk) = list_adapters().iter().find(|a| a.backend == "vulkan") {
        cases.push((
            "vulkan",
            vec![
                ("WGPU_BACKEND", "vulkan,gl".into()),
                ("WGPU_ADAPTER_NAME", vk.name.to_uppercase()),
            ],
        ));
    }
    cases.retain(|(expect, _)| *expect != "gl" || tests_cover(BackendChoice::Gl));
    let exe = std::env::current_exe().expect("test binary path");
    for (expect, vars) in cases {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "environment_selects_backend_and_adapter",
            "--nocapture",
        ])
        .env(CHILD_EXPECT, expect)
        .env_remove("WGPU_BACKEND")
        .env_remove("WGPU_ADAPTER_NAME");
        for (key, value) in &vars {
            cmd.env(key, value);
        }
        let out = cmd.output().expect("spawn test child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| l.starts_with("SKIPPED")) {
            let _ = writeln!(std::io::stderr(), "{line} [child expecting {expect}]");
        }
        assert!(
            out.status.success(),
            "child expecting {expect} with {vars:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr
        );
    }
}

/// `mdn --backend gl adapters` lists only that backend's adapters, and a
/// backend without adapters is an error that names what other backends have.
#[test]
fn adapters_command_honours_the_backend_flag() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mdn"))
            .env("MDN_TUNED_KERNELS", "off")
            .args(args)
            .env_remove("WGPU_BACKEND")
            .output()
            .expect("spawn mdn")
    };
    for choice in [BackendChoice::Vulkan, BackendChoice::Gl] {
        if context_on(choice).is_none() {
            continue;
        }
        let name = choice.to_string();
        let out = run(&["--backend", &name, "adapters"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}");
        let rows: Vec<&str> = stdout.lines().skip(1).collect();
        assert!(!rows.is_empty(), "{name}: no rows in {stdout}");
        for row in rows {
            assert!(row.starts_with(&format!("{name} ")), "{name}: {row}");
        }
    }
    // No Metal on Linux or Windows, no DX12 elsewhere than Windows.
    let absent = if cfg!(target_os = "windows") {
        "metal"
    } else {
        "dx12"
    };
    let out = run(&["--backend", absent, "adapters"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("no GPU adapter on the {absent} backend")),
        "{stderr}"
    );
}
