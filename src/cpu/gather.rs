//! Twin of `shaders/gather.wgsl`: copies one minibatch of rows, picked by the
//! epoch's permutation, into the batch input and target buffers.

/// `perm` holds row indices; rows `perm[start..start + batch_rows]` of `src`
/// (`[rows, dim]`) land in `dst` (`[batch_rows, dim]`).
pub fn gather(src: &[f32], dim: usize, perm: &[u32], start: usize, dst: &mut [f32]) {
    if dim == 1 {
        // One float per row (the toy problems): a copy call per row would
        // cost more than the copy.
        for (out, &i) in dst.iter_mut().zip(&perm[start..]) {
            *out = src[i as usize];
        }
        return;
    }
    for (r, out) in dst.chunks_exact_mut(dim).enumerate() {
        let i = perm[start + r] as usize;
        out.copy_from_slice(&src[i * dim..(i + 1) * dim]);
    }
}
