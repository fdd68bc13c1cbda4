//! The committed model and photo of the aarch64 parity check (`scripts/check_aarch64.sh` runs
//! `fq-classify --json` on them natively and under qemu-aarch64 and compares the logits): they
//! must stay what this crate's tests write ([`common::write_model`], [`common::photo`]), so a
//! change of the `.fqm` format cannot leave a stale file behind. After such a change, rewrite
//! them with `FQ_BLESS=1 cargo test --release -p fq-classify --test suite parity_fixture`.

use std::path::Path;

use crate::common;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/parity");

#[test]
fn the_committed_parity_fixture_is_the_test_model_and_photo() {
    let dir = tempfile::tempdir().unwrap();
    common::write_model(&dir.path().join("model.fqm"), None);
    common::photo(1).save(dir.path().join("photo.png")).unwrap();
    let bless = std::env::var_os("FQ_BLESS").is_some();
    for name in ["model.fqm", "photo.png"] {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        let committed = Path::new(DIR).join(name);
        if bless {
            std::fs::create_dir_all(DIR).unwrap();
            std::fs::write(&committed, &fresh).unwrap();
            continue;
        }
        let old =
            std::fs::read(&committed).unwrap_or_else(|e| panic!("{}: {e}", committed.display()));
        assert!(
            old == fresh,
            "{} is not what the tests write now (did the .fqm format change?); rewrite it with \
             FQ_BLESS=1 cargo test --release -p fq-classify --test suite parity_fixture",
            committed.display()
        );
    }
}
