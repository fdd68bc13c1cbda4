//! FairnessMetrics against the Fairlearn reference fixture (tools/reference/fixtures/metrics_fairlearn.json).

use fq_runtime::metrics::FairnessMetrics;
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tools/reference/fixtures/metrics_fairlearn.json"
);
const TOL: f64 = 1e-9;

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn matches_fairlearn_fixture() {
    let text = std::fs::read_to_string(FIXTURE).expect("the Fairlearn fixture is committed");
    let root: Value = serde_json::from_str(&text).unwrap();
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let k = case["num_classes"].as_u64().unwrap() as usize;
        let g = case["num_groups"].as_u64().unwrap() as usize;
        let names: Vec<String> = (0..g).map(|i| format!("g{i}")).collect();
        let m = FairnessMetrics::compute(
            &usizes(&case["y_true"]),
            &usizes(&case["y_pred"]),
            &usizes(&case["groups"]),
            k,
            &names,
        )
        .unwrap();
        let exp = &case["expected"];
        assert_eq!(m.group_count, usizes(&exp["group_count"]), "{name}");
        let acc = exp["group_accuracy"].as_array().unwrap();
        assert_eq!(m.group_accuracy.len(), acc.len(), "{name}");
        for (i, (got, want)) in m.group_accuracy.iter().zip(acc).enumerate() {
            match (got, want.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= TOL, "{name} group {i}: {a} vs {b}"),
                (None, None) => assert!(want.is_null()),
                _ => panic!("{name} group {i}: {got:?} vs {want}"),
            }
        }
        for (field, got) in [
            ("avg_acc", m.avg_acc),
            ("worst_acc", m.worst_acc),
            ("gap", m.gap),
            ("eopp0", m.eopp0),
            ("eopp1", m.eopp1),
            ("eodd", m.eodd),
        ] {
            let want = exp[field].as_f64().unwrap();
            assert!(
                (got - want).abs() <= TOL,
                "{name} {field}: {got} vs Fairlearn {want}"
            );
        }
    }
}
