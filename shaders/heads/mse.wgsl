// heads/mse.wgsl: twin of src/head/mse.rs (the MLP's head). Per batch row:
// the squared error averaged over the D target dimensions, and its gradient
// scaled for the mean batch loss. Bindings as every head's `loss` entry
// (`HeadLossBindings` in src/gpu/bindings.rs); no `sample` entry, since a
// point prediction has no distribution to draw from.

override ROWS_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_head: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> info: HeadInfo;

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
    let dc = info.d;
    let inv_d = 1.0 / f32(dc);
    var acc = 0.0;
    for (var j = 0u; j < dc; j++) {
        let i = r * dc + j;
        let diff = head[i] - targets[i];
        acc += diff * diff;
        grad_head[i] = 2.0 * diff * inv_d * info.grad_scale;
    }
    row_loss[r] = acc * inv_d;
}
