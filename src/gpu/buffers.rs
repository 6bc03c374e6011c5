//! Small helpers shared by the trainer, the sampler and the stage wrappers:
//! buffer creation with limit checks, packed uniform records, readback and
//! dispatch grids.

use std::sync::mpsc;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::context::{GpuContext, MAX_BINDING_ENV};
use crate::error::GpuError;
use crate::error::{MdnError, Result};

/// Storage buffers the kernels read and write, that tests and checkpoints
/// copy to and from.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// wgpu refuses zero-sized bindings; every buffer holds at least this many
/// bytes.
const MIN_BYTES: u64 = 16;

/// Refuses a buffer the device cannot bind, with a message that names what
/// was too big, instead of a validation error from deep inside wgpu.
pub fn check_binding_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    if bytes > limit {
        let own = ctx.adapter.limits().max_storage_buffer_binding_size;
        let capped = if limit < own {
            format!(", capped by {MAX_BINDING_ENV} from {}", size_text(own))
        } else {
            String::new()
        };
        return Err(MdnError::Config(format!(
            "{what} needs {}, more than this GPU binds in one buffer ({}{capped}, {}); \
             use a smaller --batch / --hidden or --device cpu",
            size_text(bytes),
            size_text(limit),
            ctx.describe()
        )));
    }
    Ok(())
}

/// Bytes for messages, in the largest binary unit that keeps a digit
/// before the point: "12.0 KiB", "128.0 MiB", "2.0 GiB".
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A zeroed storage buffer of `len` f32 (or u32) values.
pub fn storage(ctx: &GpuContext, label: &str, len: usize) -> Result<wgpu::Buffer> {
    storage_with_usage(ctx, label, len, STORAGE)
}

pub fn storage_with_usage(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let bytes = (len as u64 * 4).max(MIN_BYTES);
    check_binding_size(ctx, label, bytes)?;
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage,
        mapped_at_creation: false,
    }))
}

/// A storage buffer holding `data`.
pub fn storage_init<T: Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    check_binding_size(ctx, label, bytes.len() as u64)?;
    if bytes.len() < MIN_BYTES as usize {
        let mut padded = bytes.to_vec();
        padded.resize(MIN_BYTES as usize, 0);
        return Ok(init(ctx, label, &padded, STORAGE));
    }
    Ok(init(ctx, label, bytes, STORAGE))
}

fn init(ctx: &GpuContext, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage,
        })
}

/// Uniform records packed into one buffer, each at an offset the device
/// accepts for a binding, so a whole trainer's static per-stage values are
/// one allocation.
pub struct UniformArena {
    bytes: Vec<u8>,
    align: usize,
}

/// Where a record landed in a [`UniformArena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformSlot {
    pub offset: u64,
    pub size: u64,
}

impl UniformArena {
    pub fn new(ctx: &GpuContext) -> Self {
        UniformArena {
            bytes: Vec::new(),
            align: ctx.device.limits().min_uniform_buffer_offset_alignment as usize,
        }
    }

    pub fn push<T: Pod>(&mut self, value: &T) -> UniformSlot {
        let offset = self.bytes.len().next_multiple_of(self.align);
        self.bytes.resize(offset, 0);
        self.bytes.extend_from_slice(bytemuck::bytes_of(value));
        UniformSlot {
            offset: offset as u64,
            size: size_of::<T>() as u64,
        }
    }

    pub fn finish(self, ctx: &GpuContext, label: &str) -> wgpu::Buffer {
        let mut bytes = self.bytes;
        bytes.resize(bytes.len().max(MIN_BYTES as usize), 0);
        init(
            ctx,
            label,
            &bytes,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )
    }
}

/// A binding of a whole buffer.
pub fn whole(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    buffer.as_entire_binding()
}

/// A binding of one uniform record.
pub fn slot(buffer: &wgpu::Buffer, slot: UniformSlot) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: slot.offset,
        size: wgpu::BufferSize::new(slot.size),
    })
}

/// A bind group for group 0 of `layout` with `resources` at bindings 0, 1, ….
pub fn bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    resources: &[wgpu::BindingResource<'_>],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: r.clone(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Most workgroups one dispatch dimension takes on every backend.
pub const MAX_GROUPS_PER_DIM: u64 = 65_535;

/// `groups` workgroups as an (x, y) grid; the shaders flatten it back with
/// `flat_group` and skip the few past the end.
pub fn grid(groups: u64) -> Result<(u32, u32)> {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS_PER_DIM);
    let y = groups.div_ceil(x);
    if y > MAX_GROUPS_PER_DIM {
        return Err(MdnError::Config(format!(
            "a dispatch of {groups} workgroups is too large for one GPU pass; \
             use a smaller --batch or --hidden"
        )));
    }
    Ok((x as u32, y as u32))
}

/// Copies `size` bytes of `src` from `offset` into a mappable buffer and
/// reads them back: the only way data crosses from the GPU to the host.
/// `after_copy` may record more work (e.g. a clear) in the same
/// submission, after the copy.
pub fn read_back(
    ctx: &GpuContext,
    src: &wgpu::Buffer,
    offset: u64,
    size: u64,
    after_copy: impl FnOnce(&mut wgpu::CommandEncoder),
) -> Result<Vec<u8>> {
    let buffer = staging(ctx, "mdn readback", size);
    read_back_with(ctx, src, offset, size, &buffer, after_copy)
}

/// A mappable buffer of `size` bytes (at least 4) for [`read_back_with`].
pub fn staging(ctx: &GpuContext, label: &str, size: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// [`read_back`] through a staging buffer the caller keeps ([`staging`],
/// at least `size` bytes, unmapped), so frequent readers allocate nothing.
pub fn read_back_with(
    ctx: &GpuContext,
    src: &wgpu::Buffer,
    offset: u64,
    size: u64,
    staging: &wgpu::Buffer,
    after_copy: impl FnOnce(&mut wgpu::CommandEncoder),
) -> Result<Vec<u8>> {
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("mdn readback"),
        });
    encoder.copy_buffer_to_buffer(src, offset, staging, 0, size);
    after_copy(&mut encoder);
    ctx.queue.submit([encoder.finish()]);
    let (tx, rx) = mpsc::channel();
    let slice = staging.slice(..);
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    // A recorded error (validation, device loss) explains a failed map
    // better than the map error itself.
    ctx.wait_idle("the GPU")?;
    await_map(ctx, &rx, "reading back a buffer")?;
    let bytes = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Internal(format!("reading back a buffer: {e}")))?;
        view[..size as usize].to_vec()
    };
    staging.unmap();
    Ok(bytes)
}

/// [`read_back`] of `len` f32 values from the start of `src`.
pub fn read_f32(ctx: &GpuContext, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    read_pod(ctx, src, len)
}

/// The first `len` `u32`s of `src` (component indices).
pub fn read_u32(ctx: &GpuContext, src: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
    read_pod(ctx, src, len)
}

fn read_pod<T: bytemuck::Pod>(ctx: &GpuContext, src: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let bytes = read_back(ctx, src, 0, (len * size_of::<T>()) as u64, |_| {})?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

/// Waits for a `map_async` callback that sends its result into `rx`.
/// When several threads share the device, another thread's poll may be the
/// one that runs our callback, and our own poll can return before that
/// thread has delivered it: so wait for the callback (polling again
/// meanwhile) instead of giving up after the first poll.
pub fn await_map(
    ctx: &GpuContext,
    rx: &mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
    what: &str,
) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(5)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => return Err(GpuError::Internal(format!("{what}: {e}")).into()),
            Err(mpsc::RecvTimeoutError::Timeout) if std::time::Instant::now() < deadline => {
                let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
                ctx.check()?;
            }
            Err(_) => {
                return Err(
                    GpuError::Internal(format!("{what}: the GPU never finished the copy")).into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_text;

    #[test]
    fn sizes_read_in_the_largest_unit_with_a_whole_part() {
        for (bytes, text) in [
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (128 << 20, "128.0 MiB"),
            ((1 << 30) - (1 << 20), "1023.0 MiB"),
            (2 << 30, "2.0 GiB"),
            (5 << 40, "5120.0 GiB"),
        ] {
            assert_eq!(size_text(bytes), text, "{bytes}");
        }
    }
}
