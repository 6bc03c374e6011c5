// fused_step.wgsl: the forward and backward pass of a whole training step
// in one dispatch, for networks small enough that a block of rows' every
// activation fits in workgroup memory (src/gpu/fused.rs decides which, and
// lays the memory out). Twin of one block of `CpuTrainer::compute_gradients`
// (src/cpu/trainer.rs): each workgroup takes `chunks_per_group` consecutive
// chunks of `chunk_rows` batch rows and, per chunk,
//   1. gathers the rows' inputs and targets (gather.wgsl),
//   2. runs every layer forward (dense_forward.wgsl: acc from 0 over the
//      inputs in order, + bias, tanh on hidden layers),
//   3. runs the head's `head_row_loss` (the head's row WGSL, prepended by
//      the Rust side: the same function the per-stage `loss` entry calls),
//      writing each row's loss to `row_loss` for reduce.wgsl and the
//      gradient into workgroup memory,
//   4. runs every layer backward (dense_backward.wgsl's two products), adding
//      the chunk's weight and bias gradients into the workgroup's own slice
//      of the partials buffer, in the parameter order Adam reads.
// adam.wgsl then sums the workgroups' slices in group order: the gradient
// is deterministic (fixed chunking, fixed order, no atomics), and only its
// rounding differs from the per-stage path's, whose splits cut the batch
// elsewhere.
//
// A trainer of several models of one shape (a sweep) steps them all in the
// same dispatch: workgroup_id.z is the model, whose parameters, gradient
// slices, permutations and row losses sit at its own offsets (FusedInfo's
// strides); the data is shared.
//
// FUSED_SCRATCH (floats of workgroup memory), MAX_FUSED_TILE and its square
// come from Rust in a prelude.

override FUSED_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> perm: array<u32>;
@group(0) @binding(1) var<storage, read> inputs: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(6) var<uniform> info: FusedInfo;
@group(0) @binding(7) var<uniform> step: StepInfo;

// One chunk's activations (each layer's input and output, rows × width),
// its targets, and two blocks of rows × widest-layer deltas used in turn.
var<workgroup> scratch: array<f32, FUSED_SCRATCH>;

// From a head output's index in `scratch` to its gradient's: the head's
// gradient is the last layer's delta (wrapping u32 arithmetic).
var<private> grad_shift: u32;
// This workgroup's model's offsets into `params`, `partials` and `perm`.
var<private> param_base: u32;
var<private> partial_base: u32;
var<private> perm_base: u32;

// Where the head's row WGSL reads and writes: workgroup memory.
fn head_at(i: u32) -> f32 {
    return scratch[i];
}

fn target_at(i: u32) -> f32 {
    return scratch[i];
}

fn set_grad(i: u32, v: f32) {
    scratch[i + grad_shift] = v;
}

// Copies `n` rows of `dim` values, picked by the permutation, from `src`
// (the training inputs or targets) into scratch from `at`.
fn gather_rows(r0: u32, n: u32, dim: u32, at: u32, lid: u32, is_target: bool) {
    for (var e = lid; e < n * dim; e += FUSED_WG) {
        let r = e / dim;
        let j = e - r * dim;
        let row = perm[perm_base + step.batch_start + r0 + r];
        if (is_target) {
            scratch[at + e] = targets[row * dim + j];
        } else {
            scratch[at + e] = inputs[row * dim + j];
        }
    }
}

// The three products below run in FUSED_TILE × FUSED_TILE register
// tiles: an invocation loads 2·FUSED_TILE values per step of a sum for
// FUSED_TILE² multiply-adds, where one output per invocation loaded 2 for 1
// (on CPU drivers, where a lane's load is a gather, the loads are the whole
// cost of the step, so they take the largest tile; real GPUs keep more
// invocations busy with small ones). Each output is still summed from 0 in
// index order, as the per-stage kernels do; out-of-range rows and columns
// of an edge tile read a clamped index and are never stored. The loops run
// to the override value, a constant by the time the driver compiles, so
// they unroll and the arrays live in registers. MAX_FUSED_TILE (the
// arrays' size) comes from Rust in the prelude.
override FUSED_TILE: u32 = 4u;

// With FUSED_VEC4 (`KernelConfig::fused_vec4`, FUSED_TILE = 4) the sums
// run in four named vec4 registers (`tile4`) instead of `acc`: an array
// indexed by loop counters stays in registers only where the driver
// unrolls the loops first, else every multiply-add loads and stores
// memory. Same sums in the same order; the tile is copied into `acc` once
// at the end, for the stores.
override FUSED_VEC4: bool = false;

// With FUSED_STAGE (`KernelConfig::fused_stage`) each workgroup copies
// every layer's weights into workgroup memory before its chunks (rows of
// FusedLayer.w_stride floats, odd, so the invocations of a product, which
// read rows 4 apart, hit distinct banks), and the forward and input-delta
// products read them there: the same values in the same order, from the
// workgroup's own memory instead of the parameter buffer.
override FUSED_STAGE: bool = false;

// Where layer `layer`'s weight row `o` starts, and its stride, in
// `scratch` when staged, else in `params`.
fn weight_row(layer: FusedLayer, o: u32) -> u32 {
    if (FUSED_STAGE) {
        return layer.w_at + o * layer.w_stride;
    }
    return param_base + layer.weight + o * layer.in_dim;
}

fn weight_stride(layer: FusedLayer) -> u32 {
    if (FUSED_STAGE) {
        return layer.w_stride;
    }
    return layer.in_dim;
}

fn weight_at(i: u32) -> f32 {
    if (FUSED_STAGE) {
        return scratch[i];
    }
    return params[i];
}

// Copies every layer's weights into workgroup memory (FUSED_STAGE).
fn stage_weights(lid: u32) {
    for (var l = 0u; l < info.layer_count; l++) {
        let layer = info.layers[l];
        let n = layer.out_dim * layer.in_dim;
        for (var e = lid; e < n; e += FUSED_WG) {
            let o = e / layer.in_dim;
            let i = e - o * layer.in_dim;
            scratch[layer.w_at + o * layer.w_stride + i] = params[param_base + layer.weight + e];
        }
    }
}

fn tiles(n: u32) -> u32 {
    return (n + FUSED_TILE - 1u) / FUSED_TILE;
}

// acc[u][v] += x[u] · y[v]: one step of a tile's sums, in every product.
fn add_outer_product(
    acc: ptr<function, array<f32, MAX_FUSED_TILE_SQ>>,
    x: ptr<function, array<f32, MAX_FUSED_TILE>>,
    y: ptr<function, array<f32, MAX_FUSED_TILE>>,
) {
    for (var u = 0u; u < FUSED_TILE; u++) {
        for (var v = 0u; v < FUSED_TILE; v++) {
            (*acc)[u * MAX_FUSED_TILE + v] += (*x)[u] * (*y)[v];
        }
    }
}

// With FUSED_UNROLL (`KernelConfig::fused_unroll`) the array path's sums
// take four steps a loop pass (then the rest one at a time): the same
// terms in the same order, but a driver that does not unroll a loop whose
// length comes from the data sees four steps' loads at once instead of
// waiting on each step's before the next.
override FUSED_UNROLL: bool = false;

// One step of `tile_sums`: x(u, k) from scratch, y(v, k) from the weights'
// home (`weight_at`) when `y_weights`, else from scratch.
fn tile_step(
    acc: ptr<function, array<f32, MAX_FUSED_TILE_SQ>>,
    x_at: ptr<function, array<u32, MAX_FUSED_TILE>>,
    x_step: u32,
    y_at: ptr<function, array<u32, MAX_FUSED_TILE>>,
    y_step: u32,
    y_weights: bool,
    k: u32,
) {
    var x: array<f32, MAX_FUSED_TILE>;
    var y: array<f32, MAX_FUSED_TILE>;
    for (var u = 0u; u < FUSED_TILE; u++) {
        x[u] = scratch[(*x_at)[u] + k * x_step];
        let at = (*y_at)[u] + k * y_step;
        if (y_weights) {
            y[u] = weight_at(at);
        } else {
            y[u] = scratch[at];
        }
    }
    add_outer_product(acc, &x, &y);
}

// acc[u][v] = Σ_{k < len} x(u, k) · y(v, k) in arrays: the three products'
// sums, summed from 0 in k order (x(u, k) = scratch[x_at[u] + k·x_step],
// y as `tile_step` reads it).
fn tile_sums(
    acc: ptr<function, array<f32, MAX_FUSED_TILE_SQ>>,
    x_at: ptr<function, array<u32, MAX_FUSED_TILE>>,
    x_step: u32,
    y_at: ptr<function, array<u32, MAX_FUSED_TILE>>,
    y_step: u32,
    y_weights: bool,
    len: u32,
) {
    var k = 0u;
    if (FUSED_UNROLL) {
        for (; k + 4u <= len; k += 4u) {
            tile_step(acc, x_at, x_step, y_at, y_step, y_weights, k);
            tile_step(acc, x_at, x_step, y_at, y_step, y_weights, k + 1u);
            tile_step(acc, x_at, x_step, y_at, y_step, y_weights, k + 2u);
            tile_step(acc, x_at, x_step, y_at, y_step, y_weights, k + 3u);
        }
    }
    for (; k < len; k++) {
        tile_step(acc, x_at, x_step, y_at, y_step, y_weights, k);
    }
}

// A 4×4 tile of sums, tile[u][v] = Σ_{k < len} x(u, k) · y(v, k), in named
// registers: x(u, k) = scratch[x_at[u] + k·x_step]; y(v, k) the same from
// `params` when `y_in_params`, else from scratch. Copied into `acc`.
fn tile4(
    acc: ptr<function, array<f32, MAX_FUSED_TILE_SQ>>,
    x_at: vec4<u32>,
    x_step: u32,
    y_at: vec4<u32>,
    y_step: u32,
    y_in_params: bool,
    len: u32,
) {
    var c0 = vec4<f32>();
    var c1 = vec4<f32>();
    var c2 = vec4<f32>();
    var c3 = vec4<f32>();
    if (y_in_params) {
        for (var k = 0u; k < len; k++) {
            let xk = x_at + vec4<u32>(k * x_step);
            let yk = y_at + vec4<u32>(k * y_step);
            let x = vec4<f32>(scratch[xk.x], scratch[xk.y], scratch[xk.z], scratch[xk.w]);
            let y = vec4<f32>(params[yk.x], params[yk.y], params[yk.z], params[yk.w]);
            c0 += x.x * y;
            c1 += x.y * y;
            c2 += x.z * y;
            c3 += x.w * y;
        }
    } else {
        for (var k = 0u; k < len; k++) {
            let xk = x_at + vec4<u32>(k * x_step);
            let yk = y_at + vec4<u32>(k * y_step);
            let x = vec4<f32>(scratch[xk.x], scratch[xk.y], scratch[xk.z], scratch[xk.w]);
            let y = vec4<f32>(scratch[yk.x], scratch[yk.y], scratch[yk.z], scratch[yk.w]);
            c0 += x.x * y;
            c1 += x.y * y;
            c2 += x.z * y;
            c3 += x.w * y;
        }
    }
    let rows = mat4x4<f32>(c0, c1, c2, c3);
    for (var u = 0u; u < 4u; u++) {
        for (var v = 0u; v < 4u; v++) {
            (*acc)[u * MAX_FUSED_TILE + v] = rows[u][v];
        }
    }
}

fn quad(at: ptr<function, array<u32, MAX_FUSED_TILE>>) -> vec4<u32> {
    return vec4<u32>((*at)[0], (*at)[1], (*at)[2], (*at)[3]);
}

// Layer `l` forward for `n` rows: out[r][o] = Σ_i act[r][i] · W[o][i] + b[o].
fn forward(l: u32, n: u32, lid: u32) {
    let layer = info.layers[l];
    let n_in = layer.in_dim;
    let n_out = layer.out_dim;
    let tiles_o = tiles(n_out);
    for (var t = lid; t < tiles(n) * tiles_o; t += FUSED_WG) {
        let r0 = (t / tiles_o) * FUSED_TILE;
        let o0 = (t % tiles_o) * FUSED_TILE;
        var a_at: array<u32, MAX_FUSED_TILE>;
        var w_at: array<u32, MAX_FUSED_TILE>;
        for (var u = 0u; u < FUSED_TILE; u++) {
            a_at[u] = layer.act_in + min(r0 + u, n - 1u) * n_in;
            w_at[u] = weight_row(layer, min(o0 + u, n_out - 1u));
        }
        var acc: array<f32, MAX_FUSED_TILE_SQ>;
        if (FUSED_VEC4) {
            tile4(&acc, quad(&a_at), 1u, quad(&w_at), 1u, !FUSED_STAGE, n_in);
        } else {
            tile_sums(&acc, &a_at, 1u, &w_at, 1u, true, n_in);
        }
        for (var u = 0u; u < FUSED_TILE; u++) {
            let r = r0 + u;
            for (var v = 0u; v < FUSED_TILE; v++) {
                let o = o0 + v;
                if (r < n && o < n_out) {
                    var x = acc[u * MAX_FUSED_TILE + v] + params[param_base + layer.bias + o];
                    if (layer.tanh != 0u) {
                        x = tanh(x);
                    }
                    scratch[layer.act_out + r * n_out + o] = x;
                }
            }
        }
    }
}

// Layer `l` backward for `n` rows, from its output's delta at `d_out`:
// the weight and bias gradients summed over the rows into group `group`'s
// partial slice (written on the group's first chunk, added after), and,
// above layer 0, the delta of its input through the tanh below at `d_in`.
// The three are independent, so they are one list of work items (weight
// tiles, then biases, then input tiles) dealt out to the invocations
// together: a workgroup larger than one product's tiles runs them side by
// side instead of one after another, which shortens the chunk's critical
// path where latency, not arithmetic, sets the step (a real GPU at small
// widths). Items of one kind are contiguous, so a subgroup mostly takes
// one kind.
fn backward(l: u32, n: u32, d_out: u32, d_in: u32, group: u32, first: bool, lid: u32) {
    let layer = info.layers[l];
    // Items [0, weight_tiles) are weight tiles, [weight_tiles, bias_end)
    // biases, the rest input tiles.
    let weight_tiles = tiles(layer.out_dim) * tiles(layer.in_dim);
    let bias_end = weight_tiles + layer.out_dim;
    var items = bias_end;
    if (l > 0u) {
        items += tiles(n) * tiles(layer.in_dim);
    }
    let slice = partial_base + layer.partial_offset + group * (layer.out_dim * (layer.in_dim + 1u));
    for (var w = lid; w < items; w += FUSED_WG) {
        if (w < weight_tiles) {
            weight_gradient_tile(layer, n, d_out, slice, first, w);
        } else if (w < bias_end) {
            bias_gradient(layer, n, d_out, slice, first, w - weight_tiles);
        } else {
            input_delta_tile(layer, n, d_out, d_in, w - bias_end);
        }
    }
}

// Stores a gradient value into the group's slice: written on its first
// chunk, added after.
fn add_partial(p: u32, value: f32, first: bool) {
    if (first) {
        partials[p] = value;
    } else {
        partials[p] += value;
    }
}

// G[o][i] = Σ_r delta[r][o] · act[r][i] for tile `t` of (o, i).
fn weight_gradient_tile(layer: FusedLayer, n: u32, d_out: u32, slice: u32, first: bool, t: u32) {
    let n_in = layer.in_dim;
    let n_out = layer.out_dim;
    let tiles_i = tiles(n_in);
    let o0 = (t / tiles_i) * FUSED_TILE;
    let i0 = (t % tiles_i) * FUSED_TILE;
    var d_at: array<u32, MAX_FUSED_TILE>;
    var a_at: array<u32, MAX_FUSED_TILE>;
    for (var u = 0u; u < FUSED_TILE; u++) {
        d_at[u] = d_out + min(o0 + u, n_out - 1u);
        a_at[u] = layer.act_in + min(i0 + u, n_in - 1u);
    }
    var acc: array<f32, MAX_FUSED_TILE_SQ>;
    if (FUSED_VEC4) {
        tile4(&acc, quad(&d_at), n_out, quad(&a_at), n_in, false, n);
    } else {
        tile_sums(&acc, &d_at, n_out, &a_at, n_in, false, n);
    }
    for (var u = 0u; u < FUSED_TILE; u++) {
        let o = o0 + u;
        for (var v = 0u; v < FUSED_TILE; v++) {
            let i = i0 + v;
            if (o < n_out && i < n_in) {
                add_partial(slice + o * n_in + i, acc[u * MAX_FUSED_TILE + v], first);
            }
        }
    }
}

// The bias gradient of output `o`: Σ_r delta[r][o].
fn bias_gradient(layer: FusedLayer, n: u32, d_out: u32, slice: u32, first: bool, o: u32) {
    var s = 0.0;
    for (var r = 0u; r < n; r++) {
        s += scratch[d_out + r * layer.out_dim + o];
    }
    add_partial(slice + layer.out_dim * layer.in_dim + o, s, first);
}

// delta_in[r][i] = Σ_o delta[r][o] · W[o][i] · (1 − act[r][i]²) for tile
// `t` of (r, i).
fn input_delta_tile(layer: FusedLayer, n: u32, d_out: u32, d_in: u32, t: u32) {
    let n_in = layer.in_dim;
    let n_out = layer.out_dim;
    let tiles_i = tiles(n_in);
    let r0 = (t / tiles_i) * FUSED_TILE;
    let i0 = (t % tiles_i) * FUSED_TILE;
    var d_at: array<u32, MAX_FUSED_TILE>;
    var w_at: array<u32, MAX_FUSED_TILE>;
    let w_step = weight_stride(layer);
    for (var u = 0u; u < FUSED_TILE; u++) {
        d_at[u] = d_out + min(r0 + u, n - 1u) * n_out;
        w_at[u] = weight_row(layer, 0u) + min(i0 + u, n_in - 1u);
    }
    var acc: array<f32, MAX_FUSED_TILE_SQ>;
    if (FUSED_VEC4) {
        tile4(&acc, quad(&d_at), 1u, quad(&w_at), w_step, !FUSED_STAGE, n_out);
    } else {
        tile_sums(&acc, &d_at, 1u, &w_at, w_step, true, n_out);
    }
    for (var u = 0u; u < FUSED_TILE; u++) {
        let r = r0 + u;
        for (var v = 0u; v < FUSED_TILE; v++) {
            let i = i0 + v;
            if (r < n && i < n_in) {
                let e = r * n_in + i;
                let x = scratch[layer.act_in + e];
                scratch[d_in + e] = acc[u * MAX_FUSED_TILE + v] * (1.0 - x * x);
            }
        }
    }
}

@compute @workgroup_size(FUSED_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = flat_group(wid, nwg);
    let model = wid.z;
    param_base = model * info.param_stride;
    partial_base = model * info.partial_stride;
    perm_base = model * info.perm_stride;
    let rows_base = model * info.rows;
    let last = info.layer_count - 1u;
    let head_base = info.layers[last].act_out;
    grad_shift = info.delta_a - head_base;
    if (FUSED_STAGE) {
        // The weights are the same for every chunk: copied once, before
        // the first, and never written again this step.
        stage_weights(lid);
        workgroupBarrier();
    }
    for (var c = 0u; c < info.chunks_per_group; c++) {
        // Every value below is the same for the whole workgroup, so the
        // barriers stay in uniform control flow.
        let r0 = (group * info.chunks_per_group + c) * info.chunk_rows;
        if (r0 >= info.rows) {
            break;
        }
        let n = min(info.chunk_rows, info.rows - r0);
        gather_rows(r0, n, info.in_dim, info.layers[0].act_in, lid, false);
        gather_rows(r0, n, info.d, info.targets_at, lid, true);
        workgroupBarrier();
        for (var l = 0u; l < info.layer_count; l++) {
            forward(l, n, lid);
            workgroupBarrier();
        }
        for (var r = lid; r < n; r += FUSED_WG) {
            let h = head_base + r * info.head_width;
            let t = info.targets_at + r * info.d;
            row_loss[rows_base + r0 + r] = head_row_loss(h, t, info.k, info.d, info.grad_scale);
        }
        workgroupBarrier();
        var d_out = info.delta_a;
        var d_in = info.delta_b;
        for (var b = 0u; b < info.layer_count; b++) {
            backward(last - b, n, d_out, d_in, group, c == 0u, lid);
            workgroupBarrier();
            let t = d_out;
            d_out = d_in;
            d_in = t;
        }
    }
}
