# Path renames applied to compressor/ (and to apps/fq-validate, tests/, runtime/fuzz) when the
# evaluation code moved from fq-runtime to the new fq-eval crate (issue 17, slim device runtime).
# Re-apply with: find compressor -name '*.rs' -print0 | xargs -0 sed -i -f RENAMES.sed
s/fq_runtime::dataset/fq_eval::dataset/g
s/fq_runtime::plots/fq_eval::plots/g
s/fq_runtime::sections/fq_eval::sections/g
s/fq_runtime::metrics/fq_eval::metrics/g
s/fq_runtime::preprocess::load_dataset_images/fq_eval::images::load_dataset_images/g
