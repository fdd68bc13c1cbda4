//! Per-group evaluation of a packed model on labelled images and on a data set: the shared metric
//! code, class and group names matched to the model's, undecodable images named by CSV row (or
//! left out on request), and the same predictions across chunk boundaries as image by image.

#[path = "../../runtime/tests/packed/mod.rs"]
mod packed;

use std::cell::Cell;

use fq_eval::dataset::{Dataset, Origin, Sample};
use fq_eval::evaluation::CHUNK;
use fq_eval::metrics::FairnessMetrics;
use fq_eval::{EvalError, EvalOptions, Evaluate};
use image::RgbImage;
use packed::{png, saved_classifier as classifier, test_image as image};

#[test]
fn evaluation_uses_the_shared_metrics_and_maps_names() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    let images: Vec<RgbImage> = (0..8).map(image).collect();
    let labels = [0, 1, 2, 0, 1, 2, 0, 1];
    let groups = [0, 0, 0, 0, 1, 1, 1, 1];
    let ev = c.evaluate(&images, &labels, &groups).unwrap();
    let want = FairnessMetrics::compute(&labels, &ev.predictions, &groups, 3, c.groups()).unwrap();
    assert_eq!(ev.metrics, want);
    let single: Vec<usize> = images
        .iter()
        .map(|i| c.classify_image(i).unwrap().class)
        .collect();
    assert_eq!(ev.predictions, single);

    // The same set as a dataset whose class and group lists are in another order.
    let csv = dir.path().join("held_out.csv");
    let samples = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let path = dir.path().join(format!("{i}.png"));
            std::fs::write(&path, png(img)).unwrap();
            Sample {
                id: i.to_string(),
                image: path,
                label: 2 - labels[i],
                group: 1 - groups[i],
                origin: Origin {
                    file: csv.clone(),
                    line: i + 2,
                },
            }
        })
        .collect();
    let mut ds = Dataset {
        name: "held-out".into(),
        samples,
        classes: vec!["class2".into(), "class1".into(), "class0".into()],
        groups: vec!["IV-VI".into(), "I-III".into()],
        skipped: Vec::new(),
    };
    assert_eq!(c.evaluate_dataset(&ds).unwrap(), ev);

    ds.samples[3].image = dir.path().join("gone.png");
    let err = c.evaluate_dataset(&ds).unwrap_err().to_string();
    assert!(
        err.contains("held_out.csv") && err.contains("gone.png"),
        "{err}"
    );
    ds.classes[0] = "melanoma".into();
    match c.evaluate_dataset(&ds) {
        Err(EvalError::Mismatch(m)) => assert!(m.contains("melanoma"), "{m}"),
        other => panic!("expected a class mismatch, got {other:?}"),
    }
}

/// A data set of `n` PNGs written to `dir`, labels and groups cycling.
fn dataset(dir: &std::path::Path, n: usize) -> Dataset {
    let csv = dir.join("set.csv");
    let samples = (0..n)
        .map(|i| {
            let path = dir.join(format!("s{i}.png"));
            std::fs::write(&path, png(&image(i as u32))).unwrap();
            Sample {
                id: i.to_string(),
                image: path,
                label: i % 3,
                group: i % 2,
                origin: Origin {
                    file: csv.clone(),
                    line: i + 2,
                },
            }
        })
        .collect();
    Dataset {
        name: "set".into(),
        samples,
        classes: vec!["class0".into(), "class1".into(), "class2".into()],
        groups: vec!["I-III".into(), "IV-VI".into()],
        skipped: Vec::new(),
    }
}

#[test]
fn chunks_skip_bad_images_and_match_image_by_image() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    let n = CHUNK + 6;
    let ds = dataset(dir.path(), n);
    // Two undecodable images, one in each chunk.
    let bad = [3, CHUNK + 2];
    for &i in &bad {
        std::fs::write(&ds.samples[i].image, b"not a png").unwrap();
    }
    let progress = Cell::new(Vec::new());
    let on_progress = |done: usize| {
        let mut v = progress.take();
        v.push(done);
        progress.set(v);
    };
    let opts = EvalOptions {
        skip_bad_images: true,
    };
    let run = c.evaluate_dataset_with(&ds, opts, &on_progress).unwrap();
    assert_eq!(progress.take(), [CHUNK, n]);
    let left_out: Vec<usize> = run.bad_images.iter().map(|b| b.index).collect();
    assert_eq!(left_out, bad);
    let msg = run.bad_images[1].error.to_string();
    assert!(
        msg.contains(&format!("set.csv:{}", CHUNK + 4))
            && msg.contains(&format!("s{}.png", CHUNK + 2)),
        "{msg}"
    );
    // The kept samples' predictions are each image's own, in order.
    let kept: Vec<usize> = (0..n).filter(|i| !bad.contains(i)).collect();
    let single: Vec<usize> = kept
        .iter()
        .map(|&i| c.classify_image(&image(i as u32)).unwrap().class)
        .collect();
    assert_eq!(run.evaluation.predictions, single);
    let labels: Vec<usize> = kept.iter().map(|i| i % 3).collect();
    let groups: Vec<usize> = kept.iter().map(|i| i % 2).collect();
    let want = FairnessMetrics::compute(&labels, &single, &groups, 3, c.groups()).unwrap();
    assert_eq!(run.evaluation.metrics, want);
    assert!(run.inference_ms > 0.0);
    // Without the option, the first bad image stops the run, named by its CSV row.
    let err = c.evaluate_dataset(&ds).unwrap_err().to_string();
    assert!(err.contains("set.csv:5") && err.contains("s3.png"), "{err}");
}
