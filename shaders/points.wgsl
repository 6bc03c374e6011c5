// points.wgsl: every draw of the visualizer (src/viz/renderer.rs). Data
// points and sampled points are instanced round sprites, curves are
// instanced thick segments, the conditional density is one textured quad
// read from a storage buffer. The sampled points' instance buffer is the
// sampler's own output (z-scored targets, `STORAGE | VERTEX`), so they are
// drawn without ever leaving the GPU. Their inputs are recomputed here from
// the instance index, on the same grid the sampler was given; or, for
// samples conditioned on the data's rows (several input columns), they come
// from a second instance buffer: each sample's row's plotted input value.

// Mirrors `DrawInfo` in src/viz/renderer.rs.
struct DrawInfo {
    // Data → clip space: clip = data · transform.xy + transform.zw.
    transform: vec4<f32>,
    color: vec4<f32>,
    // Render target size in pixels (x, y); point radius or half line width
    // in pixels (z).
    size: vec4<f32>,
    // Samples: (target mean, target std, first input, last input).
    // Heatmap: its data rectangle (x0, x1, y0, y1).
    extra: vec4<f32>,
    // Samples on a grid: (rows, per_input). Curves: (y field, alpha field) of each
    // vertex; an alpha field of 4 means opaque. Heatmap: (cols, rows).
    index: vec4<u32>,
}

@group(0) @binding(0) var<uniform> draw: DrawInfo;
@group(1) @binding(0) var<storage, read> heat: array<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    // Sprites: offset from the centre in pixels. Segments: y is the signed
    // distance from the centre line in pixels. Heatmap: texture coordinate.
    @location(0) uv: vec2<f32>,
    @location(1) alpha: f32,
    // Sprites: their colour (the draw's, or their component's).
    @location(2) color: vec4<f32>,
}

// The six corners of a quad made of two triangles.
fn corner(v: u32) -> vec2<f32> {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0),
        vec2<f32>(1.0, -1.0),
        vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0),
        vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, 1.0),
    );
    return corners[v];
}

fn to_clip(p: vec2<f32>) -> vec2<f32> {
    return p * draw.transform.xy + draw.transform.zw;
}

// Pixels to clip units (the sign of y does not matter for symmetric shapes).
fn px_to_clip(d: vec2<f32>) -> vec2<f32> {
    return d * 2.0 / draw.size.xy;
}

fn sprite(center: vec2<f32>, v: u32) -> VertexOut {
    // One pixel beyond the radius leaves room for the anti-aliased edge.
    let half = draw.size.z + 1.0;
    let c = corner(v) * half;
    var out: VertexOut;
    out.position = vec4<f32>(to_clip(center) + px_to_clip(c), 0.0, 1.0);
    out.uv = c;
    out.alpha = 1.0;
    out.color = draw.color;
    return out;
}

// Component k's colour (PALETTE comes from the Rust side, colors::COMPONENTS,
// prepended to this file), at the draw's opacity.
fn component_color(k: u32) -> vec4<f32> {
    var palette = PALETTE;
    return vec4<f32>(palette[k % PALETTE_LEN].rgb, draw.color.a);
}

@vertex
fn vs_point(@builtin(vertex_index) v: u32, @location(0) p: vec2<f32>) -> VertexOut {
    return sprite(p, v);
}

// A data point coloured by the component most responsible for it
// (src/viz/owners.rs).
@vertex
fn vs_point_owned(
    @builtin(vertex_index) v: u32,
    @location(0) p: vec2<f32>,
    @location(1) owner: u32,
) -> VertexOut {
    var out = sprite(p, v);
    out.color = component_color(owner);
    return out;
}

fn sample_position(i: u32, z: f32) -> vec2<f32> {
    let rows = max(draw.index.x, 1u);
    let row = i / max(draw.index.y, 1u);
    let input = mix(draw.extra.z, draw.extra.w, (f32(row) + 0.5) / f32(rows));
    let target_value = z * draw.extra.y + draw.extra.x;
    return vec2<f32>(input, target_value);
}

@vertex
fn vs_sample(
    @builtin(vertex_index) v: u32,
    @builtin(instance_index) i: u32,
    @location(0) z: f32,
) -> VertexOut {
    return sprite(sample_position(i, z), v);
}

// A sample conditioned on a data row: its input `x` (data units) comes
// with it, from the scene's per-sample input buffer.
@vertex
fn vs_sample_at(
    @builtin(vertex_index) v: u32,
    @location(0) z: f32,
    @location(2) x: f32,
) -> VertexOut {
    return sprite(vec2<f32>(x, z * draw.extra.y + draw.extra.x), v);
}

@vertex
fn vs_sample_at_owned(
    @builtin(vertex_index) v: u32,
    @location(0) z: f32,
    @location(1) owner: u32,
    @location(2) x: f32,
) -> VertexOut {
    var out = sprite(vec2<f32>(x, z * draw.extra.y + draw.extra.x), v);
    out.color = component_color(owner);
    return out;
}

// A sample coloured by the component it was drawn from (the sampler's
// `sample_components`).
@vertex
fn vs_sample_owned(
    @builtin(vertex_index) v: u32,
    @builtin(instance_index) i: u32,
    @location(0) z: f32,
    @location(1) owner: u32,
) -> VertexOut {
    var out = sprite(sample_position(i, z), v);
    out.color = component_color(owner);
    return out;
}

@fragment
fn fs_point(in: VertexOut) -> @location(0) vec4<f32> {
    let coverage = clamp(draw.size.z + 0.5 - length(in.uv), 0.0, 1.0);
    if (coverage <= 0.0) {
        discard;
    }
    return vec4<f32>(in.color.rgb, in.color.a * coverage);
}

fn field(p: vec4<f32>, i: u32) -> f32 {
    if (i >= 4u) {
        return 1.0;
    }
    return p[i];
}

// A segment from `a` to `b` (curve vertices: x, then the fields picked by
// draw.index), as a quad `size.z` pixels to either side of the centre line.
@vertex
fn vs_segment(
    @builtin(vertex_index) v: u32,
    @location(0) a: vec4<f32>,
    @location(1) b: vec4<f32>,
) -> VertexOut {
    let half_px = draw.size.xy * 0.5;
    let pa = to_clip(vec2<f32>(a.x, field(a, draw.index.x))) * half_px;
    let pb = to_clip(vec2<f32>(b.x, field(b, draw.index.x))) * half_px;
    var dir = pb - pa;
    let len = length(dir);
    if (len > 1e-6) {
        dir = dir / len;
    } else {
        dir = vec2<f32>(1.0, 0.0);
    }
    let normal = vec2<f32>(-dir.y, dir.x);
    let c = corner(v);
    let half = draw.size.z + 1.0;
    let along = select(pa, pb, c.x > 0.0);
    let p = along + normal * c.y * half;
    var out: VertexOut;
    out.position = vec4<f32>(p / half_px, 0.0, 1.0);
    out.uv = vec2<f32>(0.0, c.y * half);
    let alpha = min(field(a, draw.index.y), field(b, draw.index.y));
    // A non-finite vertex (a diverged network) hides its segments.
    let finite = all(abs(vec4<f32>(pa, pb)) < vec4<f32>(1e30));
    out.alpha = select(0.0, clamp(alpha, 0.0, 1.0), finite);
    return out;
}

@fragment
fn fs_segment(in: VertexOut) -> @location(0) vec4<f32> {
    let coverage = clamp(draw.size.z + 0.5 - abs(in.uv.y), 0.0, 1.0);
    let a = draw.color.a * coverage * in.alpha;
    if (a <= 0.0) {
        discard;
    }
    return vec4<f32>(draw.color.rgb, a);
}

@vertex
fn vs_heat(@builtin(vertex_index) v: u32) -> VertexOut {
    let c = corner(v);
    let t = c * 0.5 + 0.5;
    let p = vec2<f32>(mix(draw.extra.x, draw.extra.y, t.x), mix(draw.extra.z, draw.extra.w, t.y));
    var out: VertexOut;
    out.position = vec4<f32>(to_clip(p), 0.0, 1.0);
    out.uv = t;
    out.alpha = 1.0;
    return out;
}

fn heat_at(col: u32, row: u32) -> f32 {
    return heat[row * draw.index.x + col];
}

@fragment
fn fs_heat(in: VertexOut) -> @location(0) vec4<f32> {
    let cols = max(draw.index.x, 1u);
    let rows = max(draw.index.y, 1u);
    // Bilinear between the cell centres.
    let g = clamp(in.uv, vec2<f32>(0.0), vec2<f32>(1.0)) * vec2<f32>(f32(cols - 1u), f32(rows - 1u));
    let c0 = u32(floor(g.x));
    let r0 = u32(floor(g.y));
    let c1 = min(c0 + 1u, cols - 1u);
    let r1 = min(r0 + 1u, rows - 1u);
    let f = g - floor(g);
    let value = mix(
        mix(heat_at(c0, r0), heat_at(c1, r0), f.x),
        mix(heat_at(c0, r1), heat_at(c1, r1), f.x),
        f.y,
    );
    // The stored density is per column relative to its peak; the square
    // root lifts the shoulders of narrow modes into view.
    let t = sqrt(clamp(value, 0.0, 1.0));
    let low = vec3<f32>(0.23, 0.07, 0.42);
    let high = vec3<f32>(0.99, 0.75, 0.35);
    let rgb = mix(low, draw.color.rgb, smoothstep(0.0, 0.6, t));
    let rgb2 = mix(rgb, high, smoothstep(0.6, 1.0, t));
    return vec4<f32>(rgb2, draw.color.a * smoothstep(0.02, 0.3, t));
}
