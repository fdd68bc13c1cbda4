//! The calibration every importance-based method starts from, cached once per (run, importance
//! settings) under `RUN_DIR/importance/`, and shared between sweep cells that run at once.

use crate::methods::config::CompressConfig;
use crate::methods::importance::{calibrate, scope_scores, ScoresFile};
use crate::methods::inputs::MethodInputs;
use crate::nn::model::Model;
use crate::nn::params::ParamStore;
use crate::support::run_files::RunFiles;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What the calibration pass leaves for every method of the run.
pub(crate) struct Calibrated {
    /// The FP32 weights with batch-norm statistics moved by the train-mode calibration passes.
    pub model: Model,
    /// Reduced scope scores, per layer.
    pub scores: Vec<Vec<f32>>,
    /// The cache directory (`maps.safetensors`: the per-group maps).
    pub dir: PathBuf,
}

/// Calibrate once per (run, importance settings): `RUN_DIR/importance/` keeps the group maps, the
/// calibrated model and the settings used; a later method with the same settings reuses them.
pub(crate) fn calibrated(
    run: &MethodInputs,
    fp32: &Model,
    cfg: &CompressConfig,
) -> Result<Calibrated> {
    let layers = run.graph.quant_layers()?;
    let key = serde_json::json!({
        "importance": cfg.importance,
        "seed": cfg.finetune.seed,
        "batch_size": cfg.finetune.batch_size,
        "augment": cfg.finetune.augment,
    });
    let root = RunFiles::new(run.dir).importance();
    std::fs::create_dir_all(&root).with_context(|| format!("{}: cannot create", root.display()))?;
    let dir = cache_dir(&root, &key)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // Sweep cells running at once (`sweep --cell`) share this cache: one calibrates a setting,
    // the others wait here and then read what it wrote.
    let _lock = crate::support::run_lock::WaitLock::acquire(&dir.join(".lock"))?;
    let key_path = dir.join("settings.json");
    let model_path = dir.join("calibrated.safetensors");
    let scores_path = dir.join("scores.json");
    let cached = std::fs::read_to_string(&key_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|k| k == key)
        && model_path.exists()
        && scores_path.exists();
    if cached {
        let params = ParamStore::load_safetensors(run.graph, &model_path, 0, run.device, false)?;
        let text = std::fs::read_to_string(&scores_path)?;
        let saved: ScoresFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: unreadable", scores_path.display()))?;
        return Ok(Calibrated {
            model: Model::new(run.graph.clone(), params, run.device.clone()),
            scores: saved.reduced,
            dir,
        });
    }
    let model = Model::new(
        run.graph.clone(),
        fp32.params.duplicate()?,
        run.device.clone(),
    );
    let imp = calibrate(
        &model,
        run.train,
        &layers,
        &cfg.importance,
        &cfg.finetune,
        run.preprocess,
        run.progress,
    )?;
    let reduced = scope_scores(&imp.reduce(&cfg.importance)?, &layers, run.granularity)?;
    // Per-group scores (each group's own map, no reduction) for the heat map and diagnostics.
    let per_group = (0..imp.maps.len())
        .map(|g| scope_scores(&imp.maps[g], &layers, run.granularity))
        .collect::<Result<Vec<_>>>()?;
    imp.save(&dir.join("maps.safetensors"))?;
    model.params.save(&model_path)?;
    let file = ScoresFile {
        layers: imp.layers.clone(),
        groups: run.groups.to_vec(),
        group_samples: imp.samples.clone(),
        reducer: cfg.importance.reducer,
        reduced: reduced.clone(),
        per_group,
    };
    fq_runtime::atomic::write_json_atomic(&scores_path, &file)?;
    crate::methods::importance_plot::heatmap_png(&file, &dir.join("heatmap.png"))?;
    fq_runtime::atomic::write_json_atomic(&key_path, &key)?;
    Ok(Calibrated {
        model,
        scores: reduced,
        dir,
    })
}

/// Where the calibration for `key` is cached: `root` itself for the run's first settings (so
/// `importance/heatmap.png` is where a user looks), `root/k<hash>/` for other settings (other
/// seeds in a sweep), so that methods with different settings never evict each other's cache.
fn cache_dir(root: &Path, key: &serde_json::Value) -> Result<PathBuf> {
    if &root_owner(root, key)? == key {
        return Ok(root.to_path_buf());
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let h = key
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    Ok(root.join(format!("k{h:016x}")))
}

/// The settings that own the cache root: those named by `root/claim.json`, else (a run cached
/// before claims existed) by `root/settings.json`, else `key`, which claims the root now. The
/// claim is a hard link of a finished temporary file, which fails when `claim.json` exists (also
/// on NFS): two sweep cells calibrating different settings at once never both take the root and
/// mix their files, which a check of `settings.json` (written last) could not prevent.
fn root_owner(root: &Path, key: &serde_json::Value) -> Result<serde_json::Value> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    let claim = root.join("claim.json");
    if let Some(k) = read(&claim).or_else(|| read(&root.join("settings.json"))) {
        return Ok(k);
    }
    // Unique per claimant: the process, a counter for its threads (two threads read the same
    // clock value often enough that they shared one file, and one's link then found it removed
    // or holding the other's settings), and the time for a pid reused across hosts.
    static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = root.join(format!(".claim.{}.{n}.{nanos}", std::process::id()));
    fq_runtime::atomic::write_json_atomic(&tmp, key)?;
    let linked = std::fs::hard_link(&tmp, &claim);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&claim).with_context(|| format!("{}: unreadable cache claim", claim.display()))
        }
        Err(e) => Err(e).with_context(|| format!("{}: cannot claim", claim.display())),
    }
}

#[cfg(test)]
mod cache_claim_tests {
    use super::*;

    /// Sweep cells with different calibration settings that start at once: exactly one owns the
    /// cache root, and every one of them agrees which.
    #[test]
    fn concurrent_claims_agree_on_one_owner() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            let barrier = std::sync::Barrier::new(4);
            let owners: Vec<serde_json::Value> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|i| {
                        let (root, barrier) = (&root, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            root_owner(root, &serde_json::json!({ "seed": i })).unwrap()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(owners.iter().all(|o| o == &owners[0]), "{owners:?}");
            let dirs: Vec<PathBuf> = (0..4)
                .map(|i| cache_dir(&root, &serde_json::json!({ "seed": i })).unwrap())
                .collect();
            assert_eq!(dirs.iter().filter(|d| **d == root).count(), 1, "{dirs:?}");
        }
    }

    /// A cache written before claims existed keeps its owner (its `settings.json`).
    #[test]
    fn an_old_cache_root_keeps_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let old = serde_json::json!({ "seed": 1 });
        fq_runtime::atomic::write_json_atomic(&dir.path().join("settings.json"), &old).unwrap();
        let new = serde_json::json!({ "seed": 2 });
        assert_eq!(cache_dir(dir.path(), &old).unwrap(), dir.path());
        assert_ne!(cache_dir(dir.path(), &new).unwrap(), dir.path());
    }
}
