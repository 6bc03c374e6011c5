//! Where a training step's GPU time goes: timestamps the device writes
//! around each dispatch, and around a whole pass of steps as training
//! records them (`mdn bench --profile`). Wall-clock rates say how fast a
//! step is; these say which kernel to work on, and how much of a step is
//! the gaps between dispatches rather than any kernel.

use super::GpuTrainer;
use super::plan::Pipe;
use super::profile::{DispatchTime, StepProfile, Timing};
use crate::error::{MdnError, Result};
use crate::gpu::buffers::read_back;

/// Most steps one profile times: each dispatch takes two of a query set's
/// at most [`wgpu::QUERY_SET_MAX_QUERIES`] timestamps.
fn steps_that_fit(dispatches: usize, wanted: usize) -> usize {
    let most = wgpu::QUERY_SET_MAX_QUERIES as usize / (2 * dispatches.max(1));
    wanted.min(most).max(1)
}

impl GpuTrainer {
    /// Trains `steps` steps (fewer where a query set or the epoch ring
    /// holds fewer) with timestamps around every dispatch, then as many in
    /// one pass with timestamps around it, and reports the medians. The
    /// steps are real training steps: parameters and the step counter move
    /// on, and their losses are added to the accumulator. A device without
    /// timestamp queries is an error that says so.
    pub fn profile(&mut self, steps: usize) -> Result<StepProfile> {
        if !self
            .ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(MdnError::Config(format!(
                "{} offers no timestamp queries, so no step profile",
                self.ctx.describe()
            )));
        }
        let len = self.plan.len();
        let n = self.chunk_len(steps_that_fit(len, steps));
        let per_dispatch = self.timed_steps(n, 2 * n * len, false)?;
        let mut dispatches = Vec::with_capacity(len);
        for (j, d) in self.plan.iter().enumerate() {
            let mut times: Vec<f64> = (0..n)
                .map(|i| {
                    let at = 2 * (i * len + j);
                    per_dispatch[at + 1].saturating_sub(per_dispatch[at]) as f64
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let (kernel, flops) = self.describe(d.pipe, j);
            dispatches.push(DispatchTime {
                kernel,
                flops,
                groups: [d.groups.0, d.groups.1, d.groups.2],
                micros: self.to_micros(times[n / 2]),
            });
        }
        let whole_steps = self.chunk_len(n);
        let whole = self.timed_steps(whole_steps, 2, true)?;
        let step_micros =
            self.to_micros(whole[1].saturating_sub(whole[0]) as f64) / whole_steps as f64;
        Ok(StepProfile {
            dispatches,
            steps: n,
            step_micros,
        })
    }

    /// Runs `count` steps with `queries` timestamps (a pass per dispatch,
    /// or one pass for all when `whole`) and reads them back, in ticks.
    fn timed_steps(&mut self, count: usize, queries: usize, whole: bool) -> Result<Vec<u64>> {
        let device = &self.ctx.device;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("step profile"),
            ty: wgpu::QueryType::Timestamp,
            count: queries as u32,
        });
        let bytes = (queries * size_of::<u64>()) as u64;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step profile timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.write_step_records(count);
        let timing = if whole {
            Timing::WholePass(&set)
        } else {
            Timing::PerDispatch(&set)
        };
        let mut encoder = self.record(&self.plan, count, true, timing);
        encoder.resolve_query_set(&set, 0..queries as u32, &resolved, 0);
        self.ctx.queue.submit([encoder.finish()]);
        self.step += count;
        let raw = read_back(&self.ctx, &resolved, 0, bytes, |_| {})?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn to_micros(&self, ticks: f64) -> f64 {
        ticks * f64::from(self.ctx.queue.get_timestamp_period()) / 1e3
    }

    /// A dispatch's kernel for the profile table, and the nominal FLOPs
    /// of the dense products (2 per multiply-add, every model's). The
    /// dense stages carry their layer, counted from the input; the
    /// backward pass runs them last layer first.
    fn describe(&self, pipe: Pipe, index: usize) -> (String, Option<f64>) {
        let seen = self.plan[..index]
            .iter()
            .filter(|d| std::mem::discriminant(&d.pipe) == std::mem::discriminant(&pipe))
            .count();
        let layers = self.layout.layers.len();
        let dense = |name: &str, l: usize| {
            let layer = &self.layout.layers[l];
            let macs = self.order.batch * self.res.models * layer.in_dim * layer.out_dim;
            (format!("{name}[{l}]"), Some(2.0 * macs as f64))
        };
        match pipe {
            Pipe::Gather => ("gather".into(), None),
            Pipe::Forward(_) => dense("dense_forward", seen),
            Pipe::Head => ("head_loss".into(), None),
            Pipe::BackwardWeight(_) => dense("weight_gradient", layers - 1 - seen),
            Pipe::BackwardInput(_) => dense("input_gradient", layers - 1 - seen),
            Pipe::Adam => ("adam".into(), None),
            Pipe::SumPartials => ("sum_partials".into(), None),
            Pipe::Fused => ("fused_step".into(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::steps_that_fit;

    #[test]
    fn a_profile_takes_what_one_query_set_holds() {
        assert_eq!(steps_that_fit(3, 50), 50);
        // 11 dispatches: 22 timestamps a step, 4096 in a set.
        assert_eq!(steps_that_fit(11, 1000), 186);
        assert_eq!(steps_that_fit(5000, 10), 1);
        assert_eq!(steps_that_fit(3, 0), 1);
    }
}
