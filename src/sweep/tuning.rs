//! `sweep --tune`: each GPU job of a sweep (a trainer's network, batch,
//! rows and models stepped together) that the table of tuned kernels does
//! not hold yet is measured with [`crate::tune`] just before it trains,
//! and trains with what won. A sweep's trainers are jobs the user never
//! names (the padded network of several K, so many models), so asking
//! them to run `mdn tune` for each by hand is asking too much.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::kernels::tuned_entry;
use crate::gpu::tuned::{JobShape, TunedEntry, TunedTable};
use crate::model::ModelSpec;
use crate::tune::{TuneJob, TuneOptions, tune_until};

/// What `sweep --tune` asks for.
pub struct SweepTuning<'a> {
    pub options: TuneOptions,
    /// Each new entry as soon as it is measured (the CLI adds it to the
    /// table's file, so a sweep stopped later keeps it).
    pub on_entry: &'a mut dyn FnMut(&TunedEntry) -> Result<()>,
}

/// The table a GPU sweep looks its jobs up in, with the entries this
/// sweep measured added.
pub(super) struct JobTuner<'a> {
    table: Option<Arc<TunedTable>>,
    tuning: Option<SweepTuning<'a>>,
}

impl<'a> JobTuner<'a> {
    pub fn new(gpu: &GpuOptions, tuning: Option<SweepTuning<'a>>) -> Self {
        JobTuner {
            table: gpu.tuned.clone(),
            tuning,
        }
    }

    pub fn tuning(&self) -> bool {
        self.tuning.is_some()
    }

    pub fn table(&self) -> Option<&TunedTable> {
        self.table.as_deref()
    }

    /// `gpu` with this table: for trainers that build their own context.
    pub fn options(&self, gpu: &GpuOptions) -> GpuOptions {
        GpuOptions {
            tuned: self.table.clone(),
            ..gpu.clone()
        }
    }

    /// Tunes the job of `models` models of `spec` on `data` (z-scored) in
    /// minibatches of `batch`, unless not asked to or the table has it.
    /// A search that fails costs a note, not the sweep: the job then trains
    /// with the defaults, as it would have without `--tune`. One stopped by
    /// `stop` keeps nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn ensure(
        &mut self,
        ctx: &Arc<GpuContext>,
        spec: &ModelSpec,
        data: &Dataset,
        batch: usize,
        models: usize,
        stop: Option<&AtomicBool>,
        note: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let Some(tuning) = &mut self.tuning else {
            return Ok(());
        };
        let job = JobShape::new(spec, batch, data.len(), models);
        if self
            .table
            .as_ref()
            .is_some_and(|t| tuned_entry(ctx, t, &job).is_some())
        {
            return Ok(());
        }
        note(&format!(
            "tuning the kernels for {} on {} (--tune)",
            job.describe(),
            ctx.info.name
        ));
        let tune_job = TuneJob {
            spec,
            data,
            batch,
            models,
        };
        let report = match tune_until(ctx, &tune_job, &tuning.options, stop, &mut |_| {}) {
            Ok(Some(report)) => report,
            Ok(None) => return Ok(()),
            Err(e) => {
                note(&format!(
                    "tuning {} failed ({e}); it trains with the defaults",
                    job.describe()
                ));
                return Ok(());
            }
        };
        let entry = report.entry();
        note(&if entry.changes.is_empty() {
            format!(
                "{}: the defaults won ({} configurations tried)",
                job.describe(),
                report.trials
            )
        } else {
            format!(
                "{}: {} ({:.2}x the defaults' steps/s; {} configurations tried)",
                job.describe(),
                entry.changes,
                report.gain(),
                report.trials
            )
        });
        (tuning.on_entry)(&entry)?;
        let mut table = self.table.as_deref().cloned().unwrap_or_default();
        table.insert(entry);
        self.table = Some(Arc::new(table));
        Ok(())
    }
}
