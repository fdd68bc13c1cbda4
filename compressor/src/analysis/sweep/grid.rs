//! The runs of a sweep: every (method, setting, seed) with its variant name and compression
//! config. A setting whose config equals one already in the grid (an ablation value that is the
//! default) reuses that run instead of training it twice.

use crate::methods::config::{CompressConfig, Preset};
use crate::methods::{Method, MethodId};
use crate::run::config::RunConfig;
use anyhow::Result;

/// A hyperparameter the paper ablates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// Bitrate regularizer weight (λ_bit).
    LambdaBit,
    /// Fairness penalty weight (λ_fair).
    LambdaFair,
    /// Learning rate of the BAQ bit logits.
    LogitLr,
}

impl Param {
    pub const ALL: [Param; 3] = [Param::LambdaBit, Param::LambdaFair, Param::LogitLr];

    pub fn name(self) -> &'static str {
        match self {
            Param::LambdaBit => "lambda_bit",
            Param::LambdaFair => "lambda_fair",
            Param::LogitLr => "logit_lr",
        }
    }

    /// The axis title of its plot.
    pub fn title(self) -> &'static str {
        match self {
            Param::LambdaBit => "bitrate coefficient λ_bit",
            Param::LambdaFair => "fairness coefficient λ_fair",
            Param::LogitLr => "bit-logit learning rate",
        }
    }

    fn set(self, c: &mut CompressConfig, v: f64) {
        match self {
            Param::LambdaBit => c.baq.lambda_bit = v,
            Param::LambdaFair => c.finetune.lambda_fair = v,
            Param::LogitLr => c.baq.logit_lr = v,
        }
    }
}

/// A Bellam–Kim mitigation run beside the plain methods (spec §10).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter, strum::IntoStaticStr, strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Mitigation {
    /// Group-balanced sampling (∝ 1/n_g, with replacement).
    BalancedSampler,
    /// Cross-entropy weighted by inverse group frequency.
    WeightedLoss,
    /// Both at once.
    Both,
}

impl Mitigation {
    /// Its setting and variant name (`balanced-sampler`).
    pub fn name(self) -> &'static str {
        match self {
            Mitigation::BalancedSampler => "balanced-sampler",
            Mitigation::WeightedLoss => "weighted-loss",
            Mitigation::Both => "balanced-weighted",
        }
    }

    /// Turn it on in a config's fine-tuning.
    pub fn apply(self, c: &mut CompressConfig) {
        use crate::data::sampler::{GroupWeights, Sampler};
        if matches!(self, Mitigation::BalancedSampler | Mitigation::Both) {
            c.finetune.sampler = Sampler::GroupBalanced;
        }
        if matches!(self, Mitigation::WeightedLoss | Mitigation::Both) {
            c.finetune.group_weights = GroupWeights::InverseFrequency;
        }
    }
}

/// What a sweep runs (the command line's choices).
#[derive(Clone, Debug)]
pub struct GridSpec {
    pub seeds: Vec<u64>,
    /// The trained methods of the main table (FQ-QAT, FQ-BAQ, the controls QAT-U4 and FP32-FT).
    pub methods: Vec<Method>,
    /// Also FQ-BAQ with the official code's preset, beside the paper's.
    pub official_code: bool,
    /// Ablated values per parameter, run with `ablation_method`.
    pub ablations: Vec<(Param, Vec<f64>)>,
    pub ablation_method: Method,
    pub ablation_seeds: Vec<u64>,
    /// Mitigations, each run with every method of `methods` and every seed.
    pub mitigations: Vec<Mitigation>,
    /// Applied to every config after the defaults (e.g. fewer epochs for a quick sweep).
    pub overrides: Overrides,
}

/// Settings that every run of the sweep shares.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub calib_batches: Option<usize>,
}

/// One run of the grid.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: MethodId,
    pub config: CompressConfig,
    /// `paper`, `official-code` or `lambda_bit=0.001`: what the row aggregates over seeds by.
    pub setting: String,
    /// The ablated parameter and value, for an ablation job.
    pub ablation: Option<(Param, f64)>,
    pub seed: u64,
}

/// A value as it appears in names: `0.001`, `0.5`, `3`.
pub fn fmt_value(v: f64) -> String {
    format!("{v}")
}

/// Every job of the grid, main table first, then the ablations; duplicates share one run.
pub fn jobs(spec: &GridSpec, run: &RunConfig) -> Result<Vec<Job>> {
    let base = |method: Method, seed: u64, preset: Preset| {
        let mut c = CompressConfig::for_run(method, run);
        c.apply_preset(preset);
        c.finetune.seed = seed;
        if let Some(e) = spec.overrides.epochs {
            c.finetune.epochs = e;
        }
        if let Some(b) = spec.overrides.calib_batches {
            c.importance.calib_batches = b;
        }
        c
    };
    let mut out: Vec<Job> = Vec::new();
    let mut push = |method: Method,
                    variant: String,
                    config: CompressConfig,
                    setting: String,
                    ablation: Option<(Param, f64)>,
                    seed: u64|
     -> Result<()> {
        // A config already in the grid (e.g. the ablation's default value) reuses that run.
        let id = match out
            .iter()
            .find(|j| j.id.method == method && j.config == config)
        {
            Some(j) => j.id.clone(),
            None => MethodId::new(method, Some(&variant))?,
        };
        out.push(Job {
            id,
            config,
            setting,
            ablation,
            seed,
        });
        Ok(())
    };
    for &m in &spec.methods {
        for &s in &spec.seeds {
            push(
                m,
                format!("s{s}"),
                base(m, s, Preset::Paper),
                "paper".into(),
                None,
                s,
            )?;
        }
    }
    if spec.official_code {
        for &s in &spec.seeds {
            let c = base(Method::FqBaq, s, Preset::OfficialCode);
            let v = format!("official-code-s{s}");
            push(Method::FqBaq, v, c, "official-code".into(), None, s)?;
        }
    }
    for &mit in &spec.mitigations {
        for &m in &spec.methods {
            for &s in &spec.seeds {
                let mut c = base(m, s, Preset::Paper);
                mit.apply(&mut c);
                let v = format!("{}-s{s}", mit.name());
                push(m, v, c, mit.name().into(), None, s)?;
            }
        }
    }
    let m = spec.ablation_method;
    for (param, values) in &spec.ablations {
        for &v in values {
            for &s in &spec.ablation_seeds {
                let mut c = base(m, s, Preset::Paper);
                param.set(&mut c, v);
                let name = format!("{}-{}-s{s}", param.name(), fmt_value(v));
                let setting = format!("{}={}", param.name(), fmt_value(v));
                push(m, name, c, setting, Some((*param, v)), s)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn default_values_reuse_the_main_runs() {
        let run = RunConfig::embedded_default(Path::new("data"), 2);
        let default_bit = CompressConfig::for_run(Method::FqBaq, &run).baq.lambda_bit;
        let spec = GridSpec {
            seeds: vec![2, 42],
            methods: vec![Method::FqQat, Method::FqBaq],
            official_code: true,
            ablations: vec![(Param::LambdaBit, vec![1e-3, default_bit])],
            ablation_method: Method::FqBaq,
            ablation_seeds: vec![2, 42],
            mitigations: vec![],
            overrides: Overrides {
                epochs: Some(1),
                calib_batches: None,
            },
        };
        let jobs = jobs(&spec, &run).unwrap();
        assert_eq!(jobs.len(), 2 * 2 + 2 + 2 * 2);
        let names: Vec<String> = jobs.iter().map(|j| j.id.name()).collect();
        assert_eq!(names[0], "fq-qat-s2");
        assert_eq!(names[4], "fq-baq-official-code-s2");
        assert_eq!(names[6], "fq-baq-lambda_bit-0.001-s2");
        // λ_bit at its default is the main FQ-BAQ run of the same seed.
        assert_eq!(names[8], "fq-baq-s2");
        assert_eq!(names[9], "fq-baq-s42");
        assert_eq!(jobs[8].setting, "lambda_bit=0.01");
        assert!(jobs.iter().all(|j| j.config.finetune.epochs == 1));
        assert_eq!(jobs[3].config.finetune.seed, 42);
        assert_eq!(
            jobs[4].config.baq.gradient,
            crate::methods::baq::BaqGradient::Detached
        );
    }
}

#[cfg(test)]
mod mitigation_tests {
    use super::*;
    use crate::data::sampler::{GroupWeights, Sampler};
    use std::path::Path;

    #[test]
    fn mitigations_run_per_method_and_seed() {
        let run = RunConfig::embedded_default(Path::new("data"), 2);
        let spec = GridSpec {
            seeds: vec![2, 42],
            methods: vec![Method::FqQat],
            official_code: false,
            ablations: vec![],
            ablation_method: Method::FqBaq,
            ablation_seeds: vec![2],
            mitigations: vec![Mitigation::BalancedSampler, Mitigation::WeightedLoss],
            overrides: Overrides::default(),
        };
        let jobs = jobs(&spec, &run).unwrap();
        let names: Vec<String> = jobs.iter().map(|j| j.id.name()).collect();
        assert_eq!(
            names,
            [
                "fq-qat-s2",
                "fq-qat-s42",
                "fq-qat-balanced-sampler-s2",
                "fq-qat-balanced-sampler-s42",
                "fq-qat-weighted-loss-s2",
                "fq-qat-weighted-loss-s42"
            ]
        );
        assert_eq!(jobs[2].setting, "balanced-sampler");
        assert_eq!(jobs[2].config.finetune.sampler, Sampler::GroupBalanced);
        assert_eq!(jobs[2].config.finetune.group_weights, GroupWeights::None);
        assert_eq!(
            jobs[5].config.finetune.group_weights,
            GroupWeights::InverseFrequency
        );
        assert_eq!(jobs[5].config.finetune.sampler, Sampler::Shuffle);
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;
    use std::path::Path;

    /// The training controls run once per seed with FQ-QAT's fine-tuning of that seed (the
    /// sweep's overrides included), λ_fair = 0 being the only difference.
    #[test]
    fn controls_run_per_seed_with_fq_qat_budget() {
        let run = RunConfig::embedded_default(Path::new("data"), 2);
        let spec = GridSpec {
            seeds: vec![2, 42],
            methods: vec![Method::FqQat, Method::QatU4, Method::Fp32Ft],
            official_code: false,
            ablations: vec![],
            ablation_method: Method::FqBaq,
            ablation_seeds: vec![2],
            mitigations: vec![],
            overrides: Overrides {
                epochs: Some(3),
                calib_batches: Some(1),
            },
        };
        let jobs = jobs(&spec, &run).unwrap();
        let names: Vec<String> = jobs.iter().map(|j| j.id.name()).collect();
        assert_eq!(
            names,
            [
                "fq-qat-s2",
                "fq-qat-s42",
                "qat-u4-s2",
                "qat-u4-s42",
                "fp32-ft-s2",
                "fp32-ft-s42"
            ]
        );
        for (i, j) in jobs.iter().enumerate().skip(2) {
            let mut want = jobs[i % 2].config.finetune.clone();
            assert_eq!(want.lambda_fair, 0.5);
            want.lambda_fair = 0.0;
            assert_eq!(j.config.finetune, want, "{}", j.id.name());
            assert_eq!(j.config.finetune.epochs, 3);
            assert_eq!(j.config.importance, jobs[i % 2].config.importance);
            assert_eq!(j.setting, "paper");
        }
    }
}
