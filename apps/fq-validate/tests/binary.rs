//! The `fq-validate` binary on a folder + CSV set: PASS (status 0) when the field matches the
//! figures in the file, FAIL (status 1) when the promise was better than the field, 2 on errors.

#[path = "../../fq-classify/tests/common/mod.rs"]
mod common;

use std::process::Command;

use fq_eval::metrics::FairnessMetrics;
use fq_eval::Evaluate;
use fq_runtime::classify::Classifier;

fn validate(model: &std::path::Path, dir: &std::path::Path, out: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fq-validate"))
        .arg("--model")
        .arg(model)
        .args(["--dataset", "folder", "--csv"])
        .arg(dir.join("field.csv"))
        .arg("--images")
        .arg(dir.join("images"))
        .arg("--out")
        .arg(dir.join(out))
        .output()
        .unwrap()
}

#[test]
fn pass_fail_and_error_statuses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let mut csv = String::from("image,label,group\n");
    let (mut labels, mut groups, mut images) = (vec![], vec![], vec![]);
    for i in 0..40u32 {
        let name = format!("p{i}.png");
        let img = common::photo(i);
        img.save(dir.path().join("images").join(&name)).unwrap();
        let (l, g) = ((i % 3) as usize, (i % 2) as usize);
        csv += &format!("{name},{},{}\n", common::CLASSES[l], common::GROUPS[g]);
        labels.push(l);
        groups.push(g);
        images.push(img);
    }
    std::fs::write(dir.path().join("field.csv"), csv).unwrap();

    // The promise = what this model really does on these images -> PASS.
    let plain = dir.path().join("plain.fqm");
    common::write_model(&plain, None);
    let field = Classifier::load(&plain)
        .unwrap()
        .evaluate(&images, &labels, &groups)
        .unwrap()
        .metrics;
    let honest = dir.path().join("honest.fqm");
    common::write_model(&honest, Some(field.clone()));
    let out = validate(&honest, dir.path(), "v1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("**PASS**"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("v1/validation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["field_metrics"]["group_correct"],
        serde_json::json!(field.group_correct)
    );
    assert!(
        dir.path().join("v1/validation.md").exists()
            && dir.path().join("v1/validation.png").exists()
    );

    // A promise of 100% in every group -> FAIL unless the model is perfect here.
    assert!(
        field.worst_acc < 0.95,
        "the random model is not that good: {field:?}"
    );
    let perfect =
        FairnessMetrics::compute(&labels, &labels, &groups, 3, &field.group_names).unwrap();
    let boastful = dir.path().join("boastful.fqm");
    common::write_model(&boastful, Some(perfect));
    let out = validate(&boastful, dir.path(), "v2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("**FAIL**") && stdout.contains("100.0% promised"),
        "{stdout}"
    );

    // No figures in the file -> cannot validate: status 2 and a clear message.
    let out = validate(&plain, dir.path(), "v3");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("carries no compression-time"));
}
