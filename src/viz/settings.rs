//! What a user chooses for a scene: which demo, which layers, the network
//! and training settings, and the status the HUD shows.

use serde::{Deserialize, Serialize};

use crate::data::toy::ToyProblem;
use crate::device::DeviceChoice;

/// The four demos of the tutorial, and the user's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scene {
    /// Toy data x → y and an MLP trained with MSE.
    Forward,
    /// The same data with the axes swapped: the MLP draws the conditional
    /// mean through empty space.
    Inverse,
    /// A mixture density network on the inverse problem.
    Mdn,
    /// Points drawn with the mouse; an MLP and an MDN side by side.
    Playground,
    /// The user's own data (`--data`): an MDN trained live on it, or the
    /// user's model (`--model`) drawn over it.
    Data,
}

impl Scene {
    pub const ALL: [Scene; 4] = [
        Scene::Forward,
        Scene::Inverse,
        Scene::Mdn,
        Scene::Playground,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scene::Forward => "forward",
            Scene::Inverse => "inverse",
            Scene::Mdn => "mdn",
            Scene::Playground => "playground",
            Scene::Data => "data",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scene::Forward => "Forward problem: y = f(x)",
            Scene::Inverse => "Inverse problem: x = f^-1(y)",
            Scene::Mdn => "MDN on the inverse problem",
            Scene::Playground => "Playground: MLP vs MDN",
            Scene::Data => "Your data",
        }
    }

    /// Whether the scene trains an MLP (the data scene shows a loaded MLP
    /// model, but trains an MDN).
    pub fn has_mlp(self) -> bool {
        !matches!(self, Scene::Mdn | Scene::Data)
    }

    /// The toy problem the scene shows, if it is a toy scene.
    pub fn toy_problem(self) -> Option<ToyProblem> {
        match self {
            Scene::Forward => Some(ToyProblem::Forward),
            Scene::Inverse | Scene::Mdn => Some(ToyProblem::Inverse),
            Scene::Playground | Scene::Data => None,
        }
    }

    pub fn has_mdn(self) -> bool {
        matches!(self, Scene::Mdn | Scene::Playground | Scene::Data)
    }
}

/// What is drawn; the mixture layers only where there is a mixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layers {
    pub data: bool,
    pub samples: bool,
    pub density: bool,
    pub means: bool,
    pub pi_panel: bool,
    /// Data coloured by their most responsible component, samples by the
    /// component they came from.
    pub components: bool,
    /// The MDN's mean E[t|x] and mode (the density's peak) as curves,
    /// beside the MLP's.
    pub mean: bool,
    pub mode: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Layers {
            data: true,
            samples: true,
            density: false,
            means: false,
            pi_panel: false,
            components: false,
            mean: false,
            mode: false,
        }
    }
}

/// Also what a setup file (`--setup F.json`) stores; fields it leaves out
/// keep their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Mixture components (1–10 in the HUD).
    pub k: usize,
    /// Hidden layers; `None`: the scene's own ([`Settings::hidden_for`]).
    pub hidden: Option<Vec<usize>>,
    pub lr: f64,
    /// Minibatch rows (at most the data's).
    pub batch: usize,
    /// Points sampled from the mixture each frame.
    pub samples: usize,
    /// Sampling temperature: σ scaled by T, π sharpened (T < 1) or
    /// flattened (T > 1), as `mdn sample --temperature`.
    pub temperature: f32,
    pub seed: u64,
    /// Rows of toy data in the toy scenes.
    pub toy_points: usize,
    /// Stop training once the loss stops improving.
    pub stop_when_converged: bool,
    /// Share of the drawn or loaded points held out as test rows, in
    /// percent (0–50); `None`: 20 in the data scene, 0 in the playground.
    /// The toy scenes test on fresh rows instead.
    pub test_percent: Option<u32>,
    pub layers: Layers,
    /// Where the nets train: `auto` is the GPU unless the adapter is a
    /// software rasteriser (then the CPU; drawing stays on the adapter).
    pub device: DeviceChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            k: 5,
            hidden: None,
            lr: 1e-2,
            batch: 256,
            samples: 10_000,
            temperature: 1.0,
            seed: 0,
            toy_points: 1000,
            stop_when_converged: true,
            test_percent: None,
            layers: Layers::default(),
            device: DeviceChoice::Auto,
        }
    }
}

impl Settings {
    /// Rejects settings no scene can run (a setup file may say anything).
    pub fn check(&self) -> crate::error::Result<()> {
        let bad = |what: String| Err(crate::error::MdnError::Config(what));
        if !(1..=MAX_K).contains(&self.k) {
            return bad(format!("K must be 1..={MAX_K}, got {}", self.k));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "the learning rate must be positive, got {}",
                self.lr
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!(
                "the temperature must be positive, got {}",
                self.temperature
            ));
        }
        if self.samples == 0 || self.samples > 1_000_000 || self.batch == 0 || self.toy_points == 0
        {
            return bad("samples (1..=1000000), batch and toy points must be positive".into());
        }
        if self.test_percent.is_some_and(|p| p > MAX_TEST_PERCENT) {
            return bad(format!("the test share is 0..={MAX_TEST_PERCENT} %"));
        }
        if let Some(h) = &self.hidden
            && (h.is_empty() || h.contains(&0))
        {
            return bad(format!("hidden layer widths must be positive, got {h:?}"));
        }
        Ok(())
    }

    /// The hidden layers the scene's nets get.
    pub fn hidden_for(&self, scene: Scene) -> Vec<usize> {
        match (&self.hidden, scene) {
            (Some(h), _) => h.clone(),
            (None, Scene::Playground) => PLAYGROUND_HIDDEN.to_vec(),
            (None, _) => TOY_HIDDEN.to_vec(),
        }
    }
}

/// The toy scenes' nets: a thousand points of a smooth problem.
pub const TOY_HIDDEN: [usize; 2] = [24, 24];
/// The playground's: one layer. A few hundred drawn points are all it has,
/// and two layers of 24 (~700 weights) learn them one by one: on a drawn X
/// with one strand sparser than the other, 30 000 steps gave an MLP curve
/// with 25× the total variation of the true E[y|x] (spikes up to single
/// points of the sparse strand), one layer 1–2×.
pub const PLAYGROUND_HIDDEN: [usize; 1] = [24];

pub const MAX_K: usize = 10;
/// The largest test share of the points, in percent.
pub const MAX_TEST_PERCENT: u32 = 50;
/// The playground trains once it has this many points.
pub const MIN_POINTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ready,
    Training,
    Converged,
    Diverged,
    DrawPoints,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ready => "Ready",
            Status::Training => "Training",
            Status::Converged => "Converged",
            Status::Diverged => "Diverged",
            Status::DrawPoints => "Draw points",
        }
    }
}
