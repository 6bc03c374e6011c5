//! A whole visualizer setup in one JSON file (`mdn view|render --setup
//! F.json`, and the window's "Save setup"): the scene, every setting, the
//! playground's points, and for the data scene where its data and model
//! come from. Saved and opened again, it gives the same scene.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::settings::{Scene, Settings};
use crate::error::{MdnError, Result};

/// What the setup file's `format` field says.
pub const SETUP_FORMAT: &str = "mdn-setup/1";

/// The data scene's source: a file, its columns, and a model to draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    pub path: PathBuf,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub model: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    pub format: String,
    pub scene: Scene,
    #[serde(default = "Settings::default")]
    pub settings: Settings,
    /// The playground's points (canvas units), in drawing order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<[f32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRef>,
}

impl Setup {
    pub fn new(scene: Scene, settings: Settings) -> Self {
        Setup {
            format: SETUP_FORMAT.into(),
            scene,
            settings,
            points: Vec::new(),
            data: None,
        }
    }

    /// Writes the file whole or not at all.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| MdnError::Data(format!("writing the setup: {e}")))?;
        crate::fsutil::write_atomic(path, format!("{json}\n").as_bytes())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| MdnError::io(path, e))?;
        let setup: Setup = serde_json::from_str(&text).map_err(|e| {
            MdnError::Data(format!(
                "{}: not a setup file ({e}); `mdn view` writes one with Save setup",
                path.display()
            ))
        })?;
        if setup.format != SETUP_FORMAT {
            return Err(MdnError::Data(format!(
                "{}: setup format `{}`, this mdn reads `{SETUP_FORMAT}`",
                path.display(),
                setup.format
            )));
        }
        if setup.points.iter().flatten().any(|v| !v.is_finite()) {
            return Err(MdnError::Data(format!(
                "{}: a point is not a finite number",
                path.display()
            )));
        }
        setup.settings.check()?;
        Ok(setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viz::settings::Layers;

    #[test]
    fn a_setup_written_and_read_back_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut setup = Setup::new(
            Scene::Playground,
            Settings {
                k: 7,
                hidden: Some(vec![12, 3]),
                lr: 3.25e-3,
                temperature: 0.7,
                seed: 42,
                layers: Layers {
                    density: true,
                    components: true,
                    mode: true,
                    ..Layers::default()
                },
                ..Settings::default()
            },
        );
        // Floats that only a shortest round trip keeps exact.
        setup.points = vec![[0.1, 0.2], [1.0 / 3.0, 0.700_000_05], [0.0, 1.0]];
        setup.data = Some(DataRef {
            path: "/data/f.parquet".into(),
            input: Some("a".into()),
            target: None,
            model: Some("/m.safetensors".into()),
        });
        setup.write(&path).unwrap();
        assert_eq!(Setup::read(&path).unwrap(), setup);

        // A file that leaves settings out gets the defaults.
        std::fs::write(&path, r#"{"format": "mdn-setup/1", "scene": "mdn"}"#).unwrap();
        let s = Setup::read(&path).unwrap();
        assert_eq!((s.scene, s.settings), (Scene::Mdn, Settings::default()));

        for (text, says) in [
            ("{", "not a setup file"),
            (
                r#"{"format": "mdn-setup/9", "scene": "mdn"}"#,
                "setup format",
            ),
            (
                r#"{"format": "mdn-setup/1", "scene": "nope"}"#,
                "not a setup file",
            ),
            (
                r#"{"format": "mdn-setup/1", "scene": "mdn", "settings": {"k": 0}}"#,
                "K must be",
            ),
            (
                r#"{"format": "mdn-setup/1", "scene": "mdn", "settings": {"lr": -1}}"#,
                "learning rate",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Setup::read(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
