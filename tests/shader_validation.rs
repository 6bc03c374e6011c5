//! Every shader parses and validates with naga (no GPU needed), every
//! pipeline's override constants resolve, every kernel's binding list
//! (`src/gpu/bindings.rs`) is what its shader declares, and every
//! `#[repr(C)]` twin in `src/gpu/layouts.rs` has exactly the layout naga
//! gives its WGSL struct.

use std::mem::{offset_of, size_of};

use mdn::gpu::KernelConfig;
use mdn::gpu::bindings::Slot;
use mdn::gpu::config::{MAX_TILE, MatmulVariant};
use mdn::gpu::kernels::Shader;
use mdn::gpu::layouts::*;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(shader: Shader) -> naga::Module {
    let source = shader.source();
    naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
        panic!(
            "{}.wgsl does not parse:\n{}",
            shader.name(),
            e.emit_to_string(&source)
        )
    })
}

fn validate(shader: Shader, module: &naga::Module) -> naga::valid::ModuleInfo {
    Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(module)
        .unwrap_or_else(|e| {
            panic!(
                "{}.wgsl does not validate:\n{}",
                shader.name(),
                e.emit_to_string(&shader.source())
            )
        })
}

#[test]
fn every_shader_parses_and_validates() {
    for shader in Shader::all() {
        let module = parse(shader);
        validate(shader, &module);
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            shader.name()
        );
    }
}

/// What wgpu does at pipeline creation: substitute the override constants
/// for one entry point and validate the result. Catches a misspelt or
/// missing constant and a workgroup memory size that does not resolve.
#[test]
fn every_pipeline_resolves_its_override_constants() {
    let configs = [
        KernelConfig::software(),
        KernelConfig::hardware(),
        KernelConfig::software().with_matmul(MatmulVariant::Tiled),
        KernelConfig::hardware().with_matmul(MatmulVariant::Blocked),
        KernelConfig::software().with_matmul(MatmulVariant::Vec4),
        KernelConfig::hardware().with_matmul(MatmulVariant::Vec4),
        KernelConfig::hardware()
            .with_overrides("matmul=vec4,big_tile=8x8,k=8")
            .unwrap(),
    ];
    let mut checked = 0;
    for cfg in configs {
        cfg.validate(&wgpu::Limits::default()).unwrap();
        for spec in cfg.pipelines() {
            let module = parse(spec.shader);
            let info = validate(spec.shader, &module);
            for (name, _) in &spec.constants {
                assert!(
                    module
                        .overrides
                        .iter()
                        .any(|(_, o)| o.name.as_deref() == Some(*name)),
                    "{}: `{name}` is not an override of {}.wgsl",
                    spec.label,
                    spec.shader.name()
                );
            }
            let mut constants = naga::back::PipelineConstants::default();
            for (name, value) in &spec.constants {
                constants.insert(name.to_string(), *value);
            }
            let (resolved, _) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, spec.entry)),
                &constants,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", spec.label));
            let ep = resolved
                .entry_points
                .iter()
                .find(|ep| ep.name == spec.entry)
                .unwrap_or_else(|| panic!("{}: no entry point {}", spec.label, spec.entry));
            assert!(
                ep.workgroup_size.iter().product::<u32>() > 0,
                "{}",
                spec.label
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} pipelines checked");
}

/// Every binding an entry point uses is in its Rust list, at the same
/// number, with the same access; and every binding a list declares is used
/// by some entry point that binds it (a shader's entries may share one
/// layout and each use part of it, as Adam's do).
#[test]
fn binding_lists_match_the_shaders() {
    // (shader and list, the list, bindings used by any of its entries).
    type Bindings = Vec<(String, u32, Slot)>;
    let mut used_by_list: Vec<(String, Bindings, Bindings)> = Vec::new();
    let uniform_as_one = |slot: Slot| match slot {
        Slot::Uniform(_) | Slot::DynamicUniform(_) => Slot::Uniform(0),
        s => s,
    };
    for spec in KernelConfig::hardware().pipelines() {
        let module = parse(spec.shader);
        let info = validate(spec.shader, &module);
        let (index, _) = module
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == spec.entry)
            .unwrap_or_else(|| panic!("{}: no entry point {}", spec.label, spec.entry));
        let ep_info = info.get_entry_point(index);
        let used: Bindings = module
            .global_variables
            .iter()
            .filter(|(h, _)| !ep_info[*h].is_empty())
            .filter_map(|(_, var)| {
                let binding = var.binding.as_ref()?;
                assert_eq!(binding.group, 0, "{}: group {}", spec.label, binding.group);
                let slot = match var.space {
                    naga::AddressSpace::Storage { access } => {
                        if access.contains(naga::StorageAccess::STORE) {
                            Slot::ReadWrite
                        } else {
                            Slot::Read
                        }
                    }
                    // Uniform sizes are checked by rust_twins_match_the_wgsl_structs.
                    naga::AddressSpace::Uniform => Slot::Uniform(0),
                    ref other => panic!("{}: unexpected space {other:?}", spec.label),
                };
                Some((var.name.clone().unwrap_or_default(), binding.binding, slot))
            })
            .collect();
        let declared: Bindings = spec
            .shader
            .bindings(spec.entry)
            .into_iter()
            .map(|b| (b.name.to_string(), b.binding, uniform_as_one(b.slot)))
            .collect();
        for u in &used {
            assert!(
                declared.contains(u),
                "{}: the shader uses {u:?}, which its Rust list {declared:?} lacks",
                spec.label
            );
        }
        let key = format!("{:?} {declared:?}", spec.shader);
        match used_by_list.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, all)) => all.extend(used),
            None => used_by_list.push((key, declared, used)),
        }
    }
    for (key, declared, used) in &used_by_list {
        for d in declared {
            assert!(
                used.contains(d),
                "{key}: {d:?} is declared but no entry uses it"
            );
        }
    }
    assert!(
        used_by_list.len() >= 8,
        "only {} lists checked",
        used_by_list.len()
    );
}

#[test]
fn tile_bound_and_layer_bound_match_the_shaders() {
    let module = parse(Shader::DenseForward);
    let constant = |name: &str| -> u32 {
        let (_, c) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no const {name}"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref other => panic!("{name} = {other:?}"),
        }
    };
    assert_eq!(constant("MAX_TILE"), MAX_TILE);
    assert_eq!(constant("MAX_LAYERS") as usize, MAX_LAYERS);
}

/// (name, size, [(member, offset)]) of a Rust struct; the member list must
/// name every field, which the comparison with naga enforces (it has them
/// all).
macro_rules! rust_layout {
    ($t:ident { $($f:ident),* $(,)? }) => {
        (
            stringify!($t),
            size_of::<$t>(),
            vec![$((stringify!($f), offset_of!($t, $f))),*],
        )
    };
}

#[test]
fn rust_twins_match_the_wgsl_structs() {
    let twins = [
        rust_layout!(StepInfo {
            batch_start,
            _pad0,
            _pad1,
            _pad2,
            lr,
            beta1,
            beta2,
            eps,
            bias1,
            bias2,
            _pad3,
            _pad4
        }),
        rust_layout!(LossState {
            sum,
            compensation,
            count,
            last,
            nonfinite,
            _pad0,
            _pad1,
            _pad2
        }),
        rust_layout!(GatherInfo {
            rows,
            in_dim,
            out_dim,
            _pad0
        }),
        rust_layout!(DenseInfo {
            rows,
            in_dim,
            out_dim,
            weight,
            bias,
            tanh,
            splits,
            split_rows,
            partial_offset,
            _pad0,
            _pad1,
            _pad2
        }),
        rust_layout!(HeadInfo {
            rows,
            k,
            d,
            width,
            grad_scale,
            _pad0,
            _pad1,
            _pad2
        }),
        rust_layout!(ReduceInfo {
            rows,
            _pad0,
            _pad1,
            _pad2
        }),
        rust_layout!(AdamLayer {
            start,
            len,
            splits,
            partial_offset
        }),
        rust_layout!(AdamInfo {
            len,
            layer_count,
            partial_stride,
            _pad1,
            layers
        }),
        rust_layout!(SampleInfo {
            rows,
            k,
            d,
            per_input,
            seed,
            temperature,
            first,
            _pad1
        }),
        rust_layout!(FusedLayer {
            in_dim,
            out_dim,
            weight,
            bias,
            act_in,
            act_out,
            partial_offset,
            tanh,
            w_at,
            w_stride,
            _pad0,
            _pad1
        }),
        rust_layout!(FusedInfo {
            rows,
            layer_count,
            chunk_rows,
            chunks_per_group,
            in_dim,
            d,
            k,
            head_width,
            grad_scale,
            targets_at,
            delta_a,
            delta_b,
            param_stride,
            partial_stride,
            perm_stride,
            _pad0,
            layers
        }),
    ];
    // The structs live in common.wgsl, which every stage starts with; any
    // stage's module has them all.
    let module = parse(Shader::Adam);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let wgsl_structs: Vec<&str> = module
        .types
        .iter()
        .filter(|(_, ty)| matches!(ty.inner, naga::TypeInner::Struct { .. }))
        .filter_map(|(_, ty)| ty.name.as_deref())
        .collect();
    for name in &wgsl_structs {
        assert!(
            twins.iter().any(|(n, _, _)| n == name),
            "WGSL struct {name} has no Rust twin in this test"
        );
    }
    for (name, size, fields) in &twins {
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some(*name))
            .unwrap_or_else(|| panic!("no WGSL struct {name} in common.wgsl"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{name} is not a struct in WGSL");
        };
        assert_eq!(*span as usize, *size, "{name}: size (WGSL vs Rust)");
        assert_eq!(
            layouter[handle].size as usize, *size,
            "{name}: layouter size"
        );
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize))
            .collect();
        assert_eq!(&wgsl, fields, "{name}: members and offsets (WGSL vs Rust)");
        // Uniform buffers need 16-byte multiples; storage structs are fine
        // with them too.
        assert_eq!(size % 16, 0, "{name}: size {size} is not a multiple of 16");
    }
}
