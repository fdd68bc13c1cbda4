//! The model card written next to every exported `.fqm` (`model-u4.fqm` -> `model-u4.md`): what
//! the model is for, the data it was made and tested on, its groups and per-group results with
//! intervals, how the bits were allocated and what it cannot tell. Charts beside it: the
//! bit-width histogram per layer and, from the run's report, the bits/fairness frontier and a
//! radar of the methods.

use crate::methods::{Method, MethodId};
use crate::run::config::{DataConfig, RunConfig};
use crate::run::report::{MethodResult, Report};
use crate::support::run_files::RunFiles;
use anyhow::Result;
use fq_eval::metrics::{wilson, FairnessMetrics};
use fq_eval::plots::{
    bit_width_histogram, frontier_chart, radar_chart, FrontierPoint, RadarSeries,
};
use fq_runtime::atomic::write_atomic;
use fq_runtime::format::{LayerWeights, PackedModel};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the card describes.
pub struct CardInput<'a> {
    pub run_dir: &'a Path,
    pub cfg: &'a RunConfig,
    pub report: &'a Report,
    pub method: MethodId,
    pub model: &'a PackedModel,
    /// The `.fqm` file and its size.
    pub model_path: &'a Path,
    pub bytes: u64,
    pub f32_bytes: u64,
}

/// Files written for one model.
#[derive(Clone, Debug)]
pub struct Card {
    pub markdown: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// `model.fqm` -> `model<suffix>` in the same directory.
fn beside(model: &Path, suffix: &str) -> PathBuf {
    let stem = model
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    model.with_file_name(format!("{stem}{suffix}"))
}

/// Bit-width of every output channel, per layer of the file (32 for unquantized layers).
pub fn layer_bits(model: &PackedModel) -> Vec<(String, Vec<u8>)> {
    model
        .layers
        .iter()
        .map(|l| {
            let bits = match &l.weights {
                LayerWeights::Packed(m) => m.bits.clone(),
                LayerWeights::F32 { rows, .. } => vec![32; *rows],
            };
            (l.name.clone(), bits)
        })
        .collect()
}

/// Writes the card and its charts.
pub fn write(c: &CardInput) -> Result<Card> {
    let bits = layer_bits(c.model);
    let name = |suffix: &str| beside(c.model_path, suffix);
    let file_name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let bits_png = name("-bits.png");
    bit_width_histogram(
        &bits_png,
        &format!(
            "Bit-width per layer — {} ({})",
            c.report.arch,
            c.method.label()
        ),
        &bits,
    )?;
    let mut charts = vec![bits_png.clone()];
    let frontier_png = name("-frontier.png");
    let radar_png = name("-radar.png");
    let (has_frontier, has_radar) = run_charts(c.report, &frontier_png, &radar_png)?;
    if has_frontier {
        charts.push(frontier_png.clone());
    }
    if has_radar {
        charts.push(radar_png.clone());
    }
    let links = Links {
        bits: file_name(&bits_png),
        frontier: has_frontier.then(|| file_name(&frontier_png)),
        radar: has_radar.then(|| file_name(&radar_png)),
    };
    let markdown = name(".md");
    write_atomic(&markdown, card_markdown(c, &bits, &links).as_bytes())?;
    Ok(Card { markdown, charts })
}

struct Links {
    bits: String,
    frontier: Option<String>,
    radar: Option<String>,
}

/// The frontier (2+ methods) and radar (2+ methods) charts of the run's methods.
fn run_charts(report: &Report, frontier: &Path, radar: &Path) -> Result<(bool, bool)> {
    // The run's plain methods; a sweep's variants are summarised in RUN_DIR/sweep/.
    let results: Vec<&MethodResult> = report
        .results
        .iter()
        .filter(|r| r.variant.is_none())
        .collect();
    if results.len() < 2 {
        return Ok((false, false));
    }
    let points: Vec<FrontierPoint> = results
        .iter()
        .map(|r| FrontierPoint {
            label: r.method.label().to_string(),
            avg_bits: r.avg_bits,
            worst_acc: r.metrics.worst_acc,
            avg_acc: r.metrics.avg_acc,
            worst_err: 0.0,
            avg_err: 0.0,
        })
        .collect();
    frontier_chart(
        frontier,
        &format!(
            "Bits vs per-group accuracy — {} on {}",
            report.arch, report.dataset
        ),
        &points,
    )?;
    let axes: Vec<String> = RADAR_AXES.iter().map(|(n, _)| n.to_string()).collect();
    let series: Vec<RadarSeries> = results
        .iter()
        .map(|r| RadarSeries {
            name: r.method.label().to_string(),
            values: RADAR_AXES
                .iter()
                .map(|(_, f)| f(&r.metrics).clamp(0.0, 1.0))
                .collect(),
        })
        .collect();
    radar_chart(
        radar,
        &format!("Fairness profile (higher is better) — {}", report.arch),
        &axes,
        &series,
        0.0,
    )?;
    Ok((true, true))
}

type Score = fn(&FairnessMetrics) -> f64;

/// The radar's axes: every one "higher is better", in [0, 1].
const RADAR_AXES: [(&str, Score); 6] = [
    ("AvgAcc", |m| m.avg_acc),
    ("WorstAcc", |m| m.worst_acc),
    ("1 - Gap", |m| 1.0 - m.gap),
    ("1 - EOpp0", |m| 1.0 - m.eopp0),
    ("1 - EOpp1", |m| 1.0 - m.eopp1),
    ("1 - EOdd", |m| 1.0 - m.eodd),
];

/// The exported method with f32 and 8-bit activations side by side (the report's activation
/// rows), so the per-group cost of 8-bit activations is on the card.
fn activation_comparison(r: &Report, id: &MethodId) -> String {
    let rows: Vec<_> = r.activations.iter().filter(|a| &a.id() == id).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "### Activations: f32 and 8-bit, the same weights (fq-runtime, test split)\n\n\
         | Activations | Calibration images | Val worst % | Test mean % | Test worst % | {} |\n|---|---|---|---|---|{}\n",
        r.groups.iter().map(|g| format!("{g} %")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(r.groups.len())
    );
    for a in rows {
        let m = &a.metrics;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            a.label(),
            a.images,
            a.val_worst_acc.map_or("—".into(), pct),
            pct(m.avg_acc),
            pct(m.worst_acc),
            m.group_accuracy
                .iter()
                .map(|g| g.map_or("—".into(), pct))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    s + "\n"
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

/// Samples per split in the run's `split.csv` (empty if it cannot be read).
fn split_sizes(run_dir: &Path) -> BTreeMap<String, usize> {
    let mut sizes = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(RunFiles::new(run_dir).split()) {
        for line in text.lines().skip(1) {
            if let Some(s) = line.rsplit(',').next() {
                *sizes.entry(s.trim().to_string()).or_insert(0) += 1;
            }
        }
    }
    sizes
}

fn data_description(cfg: &RunConfig) -> String {
    match &cfg.data {
        DataConfig::Fitzpatrick17k {
            csv,
            grouping,
            label_column,
            keep_unknown,
            ..
        } => format!(
            "Fitzpatrick17k format (`{}`), labels `{}`, skin-type grouping `{}`{}",
            csv.display(),
            label_column.config_name(),
            grouping.config_name(),
            if *keep_unknown {
                ", unknown skin type kept as a group"
            } else {
                ", rows of unknown skin type dropped"
            }
        ),
        DataConfig::Isic2019 {
            ground_truth,
            groups,
            ..
        } => format!(
            "ISIC 2019 format (`{}`), {groups} sex groups",
            ground_truth.display()
        ),
        DataConfig::Folder {
            csv,
            label_column,
            group_column,
            ..
        } => format!(
            "folder + CSV (`{}`), label column `{label_column}`, group column `{group_column}`",
            csv.display()
        ),
        DataConfig::Utkface {
            images,
            label,
            group,
        } => format!(
            "UTKFace file names (`{}`), label {}, groups by {}",
            images.display(),
            label.as_str(),
            group.as_str()
        ),
    }
}

/// How the run split its data, e.g. `stratified by class and group, 0.7/0.1/0.2 (seed 42)`.
fn split_description(cfg: &RunConfig) -> String {
    let fr = fq_eval::dataset::SplitFractions {
        train: cfg.split.train,
        val: cfg.split.val,
        test: cfg.split.test,
    };
    cfg.split.method.describe(&cfg.data, &fr, cfg.split.seed)
}

fn card_markdown(c: &CardInput, bits: &[(String, Vec<u8>)], links: &Links) -> String {
    let r = c.report;
    let cfg = c.cfg;
    let label = c.method.label();
    let result: Option<&MethodResult> = r.get(&c.method);
    let fp32: Option<&MethodResult> = r.get(&Method::Fp32.into());
    let file = c.model_path.display();
    let mut s = format!(
        "# Model card: {} {label} (`{file}`)\n\n\
         ## Intended use\n\n\
         Decision support for classifying a photo of a skin lesion into one of {} classes ({}), \
         on a device, with the FairQuant runtime (`fq-classify`). It is not a diagnosis: a \
         clinician decides. It is meant for photos like those it was trained on (below); before \
         use at a new site or on new hardware, check it per patient group with `fq-validate` \
         on a labelled local set.\n\n\
         ## Model\n\n\
         - Architecture: {} (stem width {}), input {}x{} RGB, ImageNet normalisation\n\
         - Compression: {label} (`{}`), {:.2} average weight bits{}\n\
         - File: {:.3} MB ({:.1}x smaller than the f32 weights, {:.3} MB); {} batch norms folded\n\n",
        r.arch,
        r.classes.len(),
        r.classes.join(", "),
        cfg.model.arch,
        cfg.model.width,
        cfg.model.input_size,
        cfg.model.input_size,
        c.model.summary.method,
        c.model.summary.avg_bits,
        result.map_or(String::new(), |x| format!(", {:.4} GBOPs", x.gbops)),
        c.bytes as f64 / 1e6,
        c.f32_bytes as f64 / c.bytes.max(1) as f64,
        c.f32_bytes as f64 / 1e6,
        c.model.summary.folded.len(),
    );
    let sizes = split_sizes(c.run_dir);
    let size = |k: &str| sizes.get(k).copied().unwrap_or(0);
    s += &format!(
        "## Data\n\n\
         - Dataset `{}`: {}\n\
         - Split ({}): train {} / val {} / test {} images\n\
         - Pretrained start: {}\n\
         - FP32 training: {} epochs, batch {}, learning rate {}\n\n",
        r.dataset,
        data_description(cfg),
        split_description(cfg),
        size("train"),
        size("val"),
        size("test"),
        cfg.model
            .weights
            .as_ref()
            .map_or("none (trained from scratch)".into(), |w| format!(
                "`{}`",
                w.display()
            )),
        cfg.train.epochs,
        cfg.train.batch_size,
        cfg.train.lr,
    );
    s += &format!(
        "## Groups\n\nResults are reported per patient group: {}. A group is what the dataset's \
         metadata says (e.g. Fitzpatrick skin type, recorded sex), not a property of the photo the \
         model can see.\n\n",
        r.groups
            .iter()
            .map(|g| format!("`{g}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s += "## Per-group results on the test split\n\n";
    // With 8-bit activations the deployed model is the integer one: its metrics (computed by
    // fq-runtime at export) are the file's, not the float model's row of the report.
    let deployed = c
        .model
        .activations
        .as_ref()
        .and(c.model.summary.test_metrics.as_ref());
    if let Some(a) = &c.model.activations {
        s += &format!(
            "Activations: 8-bit, static per-tensor scales from {} `{}` calibration images of the \
             training split; the figures below are the integer model's, as fq-runtime computes \
             it (`fq-classify --activations f32` runs the float path).\n\n",
            a.images, a.calibration
        );
    } else {
        s += "Activations: f32.\n\n";
    }
    match deployed.or(result.map(|x| &x.metrics)) {
        None => s += "The run's report has no test results for this method.\n\n",
        Some(m) => {
            s += "| Group | Test images | Accuracy % | 95% Wilson interval | vs FP32 (points) |\n|---|---|---|---|---|\n";
            for (g, name) in m.group_names.iter().enumerate() {
                let (n, k) = (m.group_count[g], m.group_correct[g]);
                let acc = m.group_accuracy[g].map_or("—".into(), pct);
                let ci = wilson(k, n, 0.95)
                    .map_or("—".into(), |i| format!("{}–{}", pct(i.lo), pct(i.hi)));
                let vs = fp32
                    .and_then(|f| f.metrics.group_accuracy.get(g).copied().flatten())
                    .zip(m.group_accuracy[g])
                    .map_or("—".into(), |(f, a)| format!("{:+.1}", 100.0 * (a - f)));
                s += &format!("| {name} | {n} | {acc} | {ci} | {vs} |\n");
            }
            s += &format!(
                "\nMean group accuracy {}%, worst group {}%, gap {} points; EOpp0 {:.3}, EOpp1 {:.3}, EOdd {:.3}; overall accuracy {}%.\n\n",
                pct(m.avg_acc),
                pct(m.worst_acc),
                pct(m.gap),
                m.eopp0,
                m.eopp1,
                m.eodd,
                pct(m.overall_acc)
            );
        }
    }
    s += &activation_comparison(r, &c.method);
    s += &format!(
        "## Bit allocation\n\n![Bit-width per layer]({})\n\n",
        links.bits
    );
    let mut channels: BTreeMap<u8, usize> = BTreeMap::new();
    for (_, b) in bits {
        for &v in b {
            *channels.entry(v).or_insert(0) += 1;
        }
    }
    let total: usize = channels.values().sum();
    s += &format!(
        "Output channels by bit-width: {}.\n\n| Layer | Channels | Weights | Mean bits | Min | Max |\n|---|---|---|---|---|---|\n",
        channels
            .iter()
            .map(|(b, n)| format!("{b} bits: {n} ({:.0}%)", 100.0 * *n as f64 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for ((name, b), layer) in bits.iter().zip(&c.model.layers) {
        let (rows, cols) = layer.weights.dims();
        let mean = b.iter().map(|&v| f64::from(v)).sum::<f64>() / b.len().max(1) as f64;
        s += &format!(
            "| {name} | {} | {} | {mean:.2} | {} | {} |\n",
            b.len(),
            rows * cols,
            b.iter().min().copied().unwrap_or(0),
            b.iter().max().copied().unwrap_or(0)
        );
    }
    if r.results.len() > 1 {
        s += &format!("\n## All methods of this run\n\n{}\n", r.table());
        if let Some(f) = &links.frontier {
            s += &format!("![Bits vs per-group accuracy]({f})\n\n");
        }
        if let Some(f) = &links.radar {
            s += &format!("![Fairness profile]({f})\n\n");
        }
    }
    s += &format!(
        "## Limitations\n\n\
         - The figures come from {} test images; a small group's accuracy is uncertain (see the \
         intervals), and differences between groups within those intervals are not evidence.\n\
         - They hold for this dataset's population, photo conditions and labels; other clinics, \
         cameras or skin-type mixes can differ. Validate per group on site (`fq-validate`).\n\
         - Groups are only those in the metadata ({}); other disparities are not measured.\n\
         - Quantization was evaluated with the runtime's CPU kernels; another backend may round \
         differently (again, `fq-validate` on the target hardware).\n\
         - A compressed model can lose accuracy unevenly across groups; compare with FP32 above.\n",
        r.test_samples,
        r.groups.join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_described() {
        let mut cfg = RunConfig::embedded_default(Path::new("data"), 42);
        assert_eq!(
            split_description(&cfg),
            "stratified by class and group, 0.7/0.1/0.2 (seed 42)"
        );
        cfg.split.method = fq_eval::dataset::SplitMethod::Official {
            train_list: Some("d/train_score.csv".into()),
            test_list: Some("d/all_val.csv".into()),
        };
        let d = split_description(&cfg);
        assert!(
            d.starts_with(
                "official: train = ids of d/train_score.csv, test = ids of d/all_val.csv"
            ),
            "{d}"
        );
        // Without list paths: the archive's names beside the metadata CSV.
        cfg.split.method = fq_eval::dataset::SplitMethod::Official {
            train_list: None,
            test_list: None,
        };
        assert!(split_description(&cfg).contains("ids of data/train_score.csv"));
        cfg.data = DataConfig::Isic2019 {
            ground_truth: "gt.csv".into(),
            metadata: "m.csv".into(),
            images: "i".into(),
            groups: 3,
        };
        assert!(split_description(&cfg).contains("random.Random(42).shuffle"));
    }

    #[test]
    fn card_files_sit_beside_the_model() {
        assert_eq!(
            beside(Path::new("run/model-u4.fqm"), ".md"),
            PathBuf::from("run/model-u4.md")
        );
        assert_eq!(
            beside(Path::new("deploy/fp32.fqm"), "-bits.png"),
            PathBuf::from("deploy/fp32-bits.png")
        );
    }
}
