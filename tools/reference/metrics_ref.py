#!/usr/bin/env python3
"""Reference per-group fairness metrics (spec §8) computed with Fairlearn's MetricFrame.

Writes fixtures/metrics_fairlearn.json; the format is documented in README.md.

What comes from Fairlearn directly:
  - per-group accuracy and counts: MetricFrame(accuracy_score / count, sensitive_features=groups).by_group
  - WorstAcc = .group_min(), Gap = .difference() (max - min over groups)
  - per class c (one-vs-rest, y == c vs yhat == c): per-group TPR / TNR / FPR and their between-group
    difference(); each is a MetricFrame over the samples on which the rate is defined (y == c for TPR,
    y != c for TNR/FPR), so a group without positives (negatives) of c is absent from that frame.
What is the spec's aggregation on top:
  - AvgAcc = unweighted mean of the per-group accuracies
  - a class gap is 0 when fewer than 2 groups define the rate (Fairlearn would give 0 for a single group
    too; with no sample at all MetricFrame cannot be built, so we use 0)
  - EOpp0 = mean_c gap_TNR_c, EOpp1 = mean_c gap_TPR_c, EOdd = mean_c (gap_TPR_c + gap_FPR_c), over all K classes.
Everything is cross-checked against a plain numpy implementation of the spec.
"""

import warnings
import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    true_negative_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from _common import FIXTURES, seed_everything, write_json

SEED = 8


def rate_frame(metric, yb, pb, groups, mask):
    """Per-group rate and between-group gap from a MetricFrame over the samples in `mask`.
    Returns ({group: value}, gap)."""
    if not mask.any():
        return {}, 0.0
    def rate(y_true, y_pred):
        return metric(y_true, y_pred, pos_label=1)

    rate.__name__ = metric.__name__
    mf = MetricFrame(
        metrics=rate,
        y_true=yb[mask],
        y_pred=pb[mask],
        sensitive_features=groups[mask],
    )
    by = {int(g): float(v) for g, v in mf.by_group.items()}
    gap = float(mf.difference(method="between_groups")) if len(by) >= 2 else 0.0
    return by, gap


def fairlearn_metrics(y, yhat, groups, K, G):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any sklearn/fairlearn warning (e.g. ill-defined rate) is a bug here
        mf = MetricFrame(
            metrics={"acc": accuracy_score, "count": count},
            y_true=y,
            y_pred=yhat,
            sensitive_features=groups,
        )
        acc_by = {int(g): float(v) for g, v in mf.by_group["acc"].items()}
        cnt_by = {int(g): int(v) for g, v in mf.by_group["count"].items()}
        worst = float(mf.group_min()["acc"])
        gap = float(mf.difference(method="between_groups")["acc"])
        group_accuracy = [acc_by.get(g) for g in range(G)]  # None (null) for a group with no samples
        group_count = [cnt_by.get(g, 0) for g in range(G)]
        present = [a for a in group_accuracy if a is not None]
        avg = float(np.mean(present))

        tpr, tnr, fpr = [], [], []
        gap_tpr, gap_tnr, gap_fpr = [], [], []
        for c in range(K):
            yb = (y == c).astype(np.int64)
            pb = (yhat == c).astype(np.int64)
            by, gp = rate_frame(true_positive_rate, yb, pb, groups, y == c)
            tpr.append([by.get(g) for g in range(G)])
            gap_tpr.append(gp)
            by, gn = rate_frame(true_negative_rate, yb, pb, groups, y != c)
            tnr.append([by.get(g) for g in range(G)])
            gap_tnr.append(gn)
            by, gf = rate_frame(false_positive_rate, yb, pb, groups, y != c)
            fpr.append([by.get(g) for g in range(G)])
            gap_fpr.append(gf)

    eopp0 = float(np.sum(gap_tnr) / K)
    eopp1 = float(np.sum(gap_tpr) / K)
    eodd = float(np.sum(np.array(gap_tpr) + np.array(gap_fpr)) / K)
    return {
        "group_accuracy": group_accuracy,
        "group_count": group_count,
        "avg_acc": avg,
        "worst_acc": worst,
        "gap": gap,
        "eopp0": eopp0,
        "eopp1": eopp1,
        "eodd": eodd,
        "per_class": {
            "tpr_by_group": tpr,
            "tnr_by_group": tnr,
            "fpr_by_group": fpr,
            "gap_tpr": gap_tpr,
            "gap_tnr": gap_tnr,
            "gap_fpr": gap_fpr,
        },
    }


def numpy_metrics(y, yhat, groups, K, G):
    """Plain re-implementation of spec §8, for cross-checking."""
    accs = []
    for g in range(G):
        m = groups == g
        if m.any():
            accs.append(np.mean(yhat[m] == y[m]))
    out = {"avg_acc": np.mean(accs), "worst_acc": min(accs), "gap": max(accs) - min(accs)}
    gt, gn = [], []
    for c in range(K):
        tprs, tnrs = [], []
        for g in range(G):
            m = groups == g
            pos = m & (y == c)
            neg = m & (y != c)
            if pos.any():
                tprs.append(np.mean(yhat[pos] == c))
            if neg.any():
                tnrs.append(np.mean(yhat[neg] != c))
        gt.append(max(tprs) - min(tprs) if len(tprs) >= 2 else 0.0)
        gn.append(max(tnrs) - min(tnrs) if len(tnrs) >= 2 else 0.0)
    out["eopp0"] = sum(gn) / K
    out["eopp1"] = sum(gt) / K
    out["eodd"] = (sum(gt) + sum(gn)) / K
    return out


def make_case(name, y, yhat, groups, K, G, cases):
    y, yhat, groups = (np.asarray(a, dtype=np.int64) for a in (y, yhat, groups))
    assert len(y) == len(yhat) == len(groups)
    assert y.min() >= 0 and y.max() < K and yhat.min() >= 0 and yhat.max() < K
    assert groups.min() >= 0 and groups.max() < G
    exp = fairlearn_metrics(y, yhat, groups, K, G)
    ref = numpy_metrics(y, yhat, groups, K, G)
    for k, v in ref.items():
        assert abs(exp[k] - v) <= 1e-12, (name, k, exp[k], v)
    cases.append(
        {
            "name": name,
            "num_classes": K,
            "num_groups": G,
            "y_true": y.tolist(),
            "y_pred": yhat.tolist(),
            "groups": groups.tolist(),
            "expected": exp,
        }
    )


def noisy_predictions(rng, y, K, p_correct):
    yhat = y.copy()
    flip = rng.random(len(y)) >= p_correct
    yhat[flip] = rng.integers(0, K, flip.sum())
    return yhat


def main():
    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    cases = []

    # 1. Two groups, three classes, small and hand-checkable.
    y = [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 0, 1, 2, 2, 1, 0]
    yhat = [0, 1, 1, 1, 2, 0, 0, 1, 2, 0, 2, 1, 1, 2, 0, 0]
    grp = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    make_case("two_groups_three_classes", y, yhat, grp, 3, 2, cases)

    # 2. Three groups (ISIC-like UNK/female/male), 9 classes; class 8 never occurs in y_true but is predicted
    #    a few times (it still counts in K' = 9, adding 0 to the TPR gap and a non-zero TNR gap).
    n = 90
    y = rng.integers(0, 8, n)
    grp = rng.choice(3, n, p=[0.1, 0.45, 0.45])
    yhat = noisy_predictions(rng, y, 8, 0.6)
    yhat[rng.choice(n, 4, replace=False)] = 8
    make_case("three_groups_nine_classes_one_absent", y, yhat, grp, 9, 3, cases)

    # 3. Six groups (Fitzpatrick types), 5 classes; group 5 has no samples of classes 3 and 4, and group 2
    #    only has samples of class 1 (so its TNR for class 1 is undefined and its TPR for the others too).
    n = 120
    grp = rng.integers(0, 6, n)
    y = rng.integers(0, 5, n)
    y[(grp == 5) & (y >= 3)] = rng.integers(0, 3, int(((grp == 5) & (y >= 3)).sum()))
    y[grp == 2] = 1
    yhat = noisy_predictions(rng, y, 5, 0.55)
    make_case("six_groups_five_classes_missing_classes", y, yhat, grp, 5, 6, cases)

    # 4. A random case of 500 samples: 4 imbalanced groups, 7 classes, group-dependent accuracy.
    n = 500
    grp = rng.choice(4, n, p=[0.5, 0.25, 0.15, 0.1])
    y = rng.choice(7, n, p=[0.3, 0.25, 0.15, 0.1, 0.1, 0.06, 0.04])
    yhat = y.copy()
    for g, p in enumerate([0.8, 0.7, 0.6, 0.45]):
        m = grp == g
        yhat[m] = noisy_predictions(rng, y[m], 7, p)
    make_case("random_500_four_groups_seven_classes", y, yhat, grp, 7, 4, cases)

    # 5. Group id 2 of 4 has no samples at all: its accuracy is null and it is left out of every aggregate.
    n = 60
    grp = rng.choice([0, 1, 3], n)
    y = rng.integers(0, 4, n)
    yhat = noisy_predictions(rng, y, 4, 0.7)
    make_case("empty_group", y, yhat, grp, 4, 4, cases)

    # 6. One group only: every gap is 0 (fewer than 2 groups define any rate).
    y = [0, 1, 2, 1, 0, 2, 2]
    yhat = [0, 1, 1, 1, 2, 2, 0]
    make_case("single_group", y, yhat, [0] * 7, 3, 1, cases)

    write_json(FIXTURES / "metrics_fairlearn.json", {"cases": cases})
    print(f"metrics_fairlearn.json: {len(cases)} cases")


if __name__ == "__main__":
    main()
