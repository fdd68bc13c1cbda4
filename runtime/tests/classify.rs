//! The deployment API: load from a path or bytes, classify from a path, bytes, a decoded image, a
//! batch or a tensor (all agree), probabilities, and errors instead of panics. (Per-group
//! evaluation is fq-eval's: eval/tests/evaluation.rs.)

use crate::packed;

use fq_runtime::preprocess::to_chw;
use fq_runtime::{softmax, Classifier, Error, Prediction};
use image::RgbImage;
use packed::{png, saved_classifier as classifier, test_image as image};

#[test]
fn every_entry_point_gives_the_same_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let c = classifier(dir.path());
    assert_eq!(c.classes(), ["class0", "class1", "class2"]);
    assert_eq!(c.summary().method_label, "TEST");
    let img = image(1);
    let p = c.classify_image(&img).unwrap();
    assert_eq!(p.probabilities.len(), 3);
    assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert_eq!(p.probabilities, softmax(&p.logits));
    let best = (0..3)
        .max_by(|&a, &b| p.logits[a].total_cmp(&p.logits[b]))
        .unwrap();
    assert_eq!(p.class, best);
    assert_eq!(c.classify_tensor(&to_chw(&img, c.preprocess())).unwrap(), p);
    assert_eq!(c.classify_bytes(&png(&img), "upload.png").unwrap(), p);
    let path = dir.path().join("lesion.png");
    std::fs::write(&path, png(&img)).unwrap();
    assert_eq!(c.classify_path(&path).unwrap(), p);
    let err = c.classify_bytes(b"not an image", "upload.bin").unwrap_err();
    assert!(err.to_string().contains("upload.bin"), "{err}");
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    // The same model from bytes; the logits-to-prediction step is public and the same.
    let from_bytes = Classifier::from_bytes(&std::fs::read(dir.path().join("model.fqm")).unwrap());
    assert_eq!(from_bytes.unwrap().classify_image(&img).unwrap(), p);
    assert_eq!(Prediction::from_logits(p.logits.clone()), p);
    // A batch gives each image's own prediction, in order.
    let images: Vec<RgbImage> = (0..5).map(image).collect();
    let batch = c.classify_images(&images).unwrap();
    assert_eq!(batch.len(), 5);
    for (img, b) in images.iter().zip(&batch) {
        assert_eq!(&c.classify_image(img).unwrap(), b);
    }
    assert_eq!(batch[1], p);
    assert!(c.classify_images(&[]).unwrap().is_empty());
    // A tensor of the wrong size is an error, not a panic.
    let err = c.classify_tensor(&[0.0; 7]).unwrap_err().to_string();
    assert!(err.contains("input has 7 values"), "{err}");
}

#[test]
fn prediction_from_logits_takes_the_first_maximum() {
    let p = Prediction::from_logits(vec![1.0, 3.0, 3.0, -2.0]);
    assert_eq!(p.class, 1);
    assert_eq!(p.probabilities, softmax(&p.logits));
    let rows = Prediction::from_logit_rows(&[0.0, 1.0, 5.0, 2.0, 9.0], 2);
    let classes: Vec<usize> = rows.iter().map(|r| r.class).collect();
    assert_eq!(classes, [1, 0]);
    assert!(Prediction::from_logit_rows(&[1.0], 0).is_empty());
}

#[test]
fn a_damaged_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let _ = classifier(dir.path());
    let path = dir.path().join("model.fqm");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = Classifier::load(&path)
        .err()
        .expect("a damaged file")
        .to_string();
    assert!(
        err.contains("model.fqm") && err.contains("checksum"),
        "{err}"
    );
}
