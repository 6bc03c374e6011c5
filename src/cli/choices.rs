//! The command line's spelling of the library's plain enums. clap stays in
//! `cli/`: each flag's enum here mirrors one in the library, variant for
//! variant, and converts into it.

/// Declares a `clap::ValueEnum` mirror of a library enum with the same
/// variants (their doc comments become the flag's help), and the
/// conversion into it.
macro_rules! value_enum {
    ($(#[$m:meta])* $cli:ident => $lib:path { $($(#[$vm:meta])* $v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
        pub enum $cli {
            $($(#[$vm])* $v),*
        }

        impl From<$cli> for $lib {
            fn from(c: $cli) -> Self {
                match c {
                    $($cli::$v => <$lib>::$v),*
                }
            }
        }
    };
}

value_enum! {
    /// `--device`.
    Device => mdn::DeviceChoice {
        /// The GPU when a hardware adapter exists, else the CPU (with a note on stderr).
        Auto,
        Gpu,
        Cpu,
    }
}

value_enum! {
    /// `train --covariance`.
    CovarianceArg => mdn::model::Covariance {
        /// Diagonal Gaussians: each target dimension independent within a component.
        Diag,
        /// Full covariance (2 to 16 target columns): correlated dimensions in one component.
        Full,
    }
}

value_enum! {
    /// `--schedule`.
    Schedule => mdn::LrSchedule {
        Constant,
        /// Cosine decay from `lr` to 2 % of it over the run: the late, small steps are what takes the NLL from good to close to optimal.
        Cosine,
    }
}

value_enum! {
    /// `--toy`.
    Toy => mdn::data::toy::ToyProblem {
        /// input x, target y: unimodal, a plain MLP fits it.
        Forward,
        /// input y, target x: multi-modal, the MLP fails and the MDN does not.
        Inverse,
        /// input x, targets y0,y1: an arc with correlated noise, for --covariance full.
        Band,
    }
}

value_enum! {
    /// `--scene`.
    SceneArg => mdn::viz::Scene {
        /// Toy data x → y and an MLP trained with MSE.
        Forward,
        /// The same data with the axes swapped: the MLP draws the conditional mean through empty space.
        Inverse,
        /// A mixture density network on the inverse problem.
        Mdn,
        /// Points drawn with the mouse; an MLP and an MDN side by side.
        Playground,
        /// Your data (--data): an MDN trained live on it, or your --model drawn over it.
        Data,
    }
}

value_enum! {
    /// `--backend` (the aliases are those `WGPU_BACKEND` accepts).
    Backend => mdn::gpu::context::BackendChoice {
        /// Every backend compiled in; the best adapter wins.
        #[value(alias = "all")]
        Auto,
        #[value(alias = "vk")]
        Vulkan,
        #[value(alias = "mtl")]
        Metal,
        #[value(alias = "d3d12")]
        Dx12,
        #[value(aliases = ["gles", "opengl"])]
        Gl,
    }
}

value_enum! {
    /// `mdn bench --device`.
    BenchDeviceArg => mdn::bench::BenchDevice {
        Cpu,
        Gpu,
    }
}

value_enum! {
    /// `mdn tune --config`: one of the benchmark's sizes.
    BenchSizeArg => mdn::bench::BenchConfig {
        /// batch 1024, hidden 32,32, K 5.
        Small,
        /// batch 4096, hidden 64,64, K 5.
        Medium,
        /// batch 65536, hidden 256,256, K 8.
        Large,
    }
}

value_enum! {
    /// `mdn bench --model`.
    BenchModelArg => mdn::bench::BenchModel {
        Mdn,
        Mlp,
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;
    use mdn::gpu::context::BackendChoice;

    use super::Backend;

    /// `--backend` and `WGPU_BACKEND` accept the same names and aliases and
    /// mean the same backend by them.
    #[test]
    fn backend_flag_and_environment_agree() {
        for choice in BackendChoice::ALL {
            let name = choice.to_string();
            let flag = Backend::from_str(&name, false).unwrap();
            assert_eq!(BackendChoice::from(flag), choice);
        }
        let names: Vec<String> = Backend::value_variants()
            .iter()
            .map(|v| v.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, ["auto", "vulkan", "metal", "dx12", "gl"]);
        for alias in ["all", "vk", "mtl", "d3d12", "gles", "opengl"] {
            let flag = Backend::from_str(alias, false).unwrap();
            assert_eq!(BackendChoice::from(flag), alias.parse().unwrap(), "{alias}");
        }
    }
}
