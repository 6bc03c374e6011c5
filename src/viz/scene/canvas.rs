//! The playground's canvas: points drawn and erased with the mouse, and
//! when they reach the trainers.

use super::{SceneState, empty_canvas};
use crate::error::Result;
use crate::viz::presets::Preset;
use crate::viz::settings::Status;

impl SceneState {
    /// Adds points (canvas units); they train after `sync_data`.
    pub fn add_points(&mut self, pts: &[(f32, f32)]) {
        if pts.is_empty() {
            return;
        }
        let d = &mut self.data;
        for &(x, y) in pts {
            if x.is_finite() && y.is_finite() {
                d.inputs.push(x.clamp(0.0, 1.0));
                d.targets.push(y.clamp(0.0, 1.0));
            }
        }
        self.data_dirty = true;
        self.upload_points();
    }

    /// Removes the points within `radius` of (x, y) (canvas units,
    /// measured with the axes scaled by `aspect` = width/height so the
    /// eraser is round on screen).
    pub fn erase(&mut self, x: f32, y: f32, radius: f32, aspect: f32) {
        let d = &mut self.data;
        let before = d.inputs.len();
        let mut keep_in = Vec::with_capacity(before);
        let mut keep_t = Vec::with_capacity(before);
        for (&a, &b) in d.inputs.iter().zip(&d.targets) {
            let dx = (a - x) * aspect;
            if dx * dx + (b - y) * (b - y) > radius * radius {
                keep_in.push(a);
                keep_t.push(b);
            }
        }
        if keep_in.len() != before {
            d.inputs = keep_in;
            d.targets = keep_t;
            self.data_dirty = true;
            self.upload_points();
        }
    }

    pub fn clear_points(&mut self) -> Result<()> {
        self.data = empty_canvas();
        self.playing = false;
        self.rebuild(false)
    }

    /// Replaces the points with a preset's and starts training on them.
    pub fn load_preset(&mut self, preset: Preset, seed: u64) -> Result<()> {
        self.replace_points(&preset.points(seed))
    }

    /// Replaces the points (canvas units) and starts training on them.
    pub fn replace_points(&mut self, points: &[(f32, f32)]) -> Result<()> {
        self.data = empty_canvas();
        self.playing = false;
        self.rebuild(false)?;
        self.add_points(points);
        self.sync_data()
    }

    pub fn data_dirty(&self) -> bool {
        self.data_dirty
    }

    /// Rebuilds the trainers on the edited points, keeping the parameters.
    pub fn sync_data(&mut self) -> Result<()> {
        if !self.data_dirty {
            return Ok(());
        }
        let was_waiting = self.status == Status::DrawPoints;
        let playing = self.playing;
        self.rebuild(true)?;
        if was_waiting && self.status == Status::Ready {
            // Enough points now: start on our own, like the tutorial.
            self.set_playing(true);
        } else if playing {
            self.set_playing(true);
        }
        Ok(())
    }
}
