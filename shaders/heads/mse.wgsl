// heads/mse.wgsl: twin of src/head/mse.rs (the MLP's head). Per batch row:
// the squared error averaged over the D target dimensions, and its gradient
// scaled for the mean batch loss (heads/mse_row.wgsl, shared with the fused
// step). Bindings as every head's `loss` entry
// (`HeadLossBindings` in src/gpu/bindings.rs); no `sample` entry, since a
// point prediction has no distribution to draw from.

override ROWS_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_head: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> info: HeadInfo;

// Where heads/mse_row.wgsl (prepended by HeadDef::wgsl) reads and writes:
// this stage's storage buffers.
fn head_at(i: u32) -> f32 {
    return head[i];
}

fn target_at(i: u32) -> f32 {
    return targets[i];
}

fn set_grad(i: u32, v: f32) {
    grad_head[i] = v;
}

@compute @workgroup_size(ROWS_WG)
fn loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_group(wid, nwg) * ROWS_WG + lid;
    if (r >= info.rows) {
        return;
    }
    row_loss[r] = head_row_loss(r * info.width, r * info.d, info.k, info.d, info.grad_scale);
}
