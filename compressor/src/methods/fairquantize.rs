//! The FairQuantize baseline ("Guo et al.", the Fitzpatrick17k/ResNet18 row of Table 1), as the
//! official FairQuant code runs it and spec §5.5 describes it:
//! 1. grape importance on the sensitive groups (§2; the run's cached calibration, shared with the
//!    FairQuant methods, since the per-group maps do not depend on the reducer);
//! 2. the `subtractive` reducer, elementwise `I = I_{g=0} - beta * I_{g=1}` with `beta = 1.0`;
//! 3. per output channel, the mean of `|I|` (§2.2);
//! 4. the §3 allocation with the palette `{2, 4, 8}` and the proportions **reversed** relative to
//!    FQ-QAT: `{0.4, 0.4, 0.2}`, paired with the sorted bits by position (40% of the channels at
//!    2 bits, 40% at 4, the 20% with the largest `|I|` at 8; nominal 4.0 bits per channel);
//! 5. QAT as FQ-QAT (§5.3: fixed bits, §1 quantizer with STE, AdamW, clip 1.0, constant rate,
//!    the same epochs) but with **no fairness loss** (`lambda_fair = 0`).
//!
//! Ambiguities and how they are resolved here:
//! - *Which group is `g0`.* The spec names Fitzpatrick17k's groups: `g0` = types I–III,
//!   `g1` = IV–VI. We use the dataset's group ids, which for the binary Fitzpatrick grouping are
//!   exactly these (`"I-III"` = 0, `"IV-VI"` = 1); for another two-group dataset `g0` is its first
//!   group (e.g. ISIC's HEAD grouping: female = 0, male = 1). With other than two groups the
//!   method stops with an error (the reducer is defined for two groups only), rather than
//!   silently picking two.
//! - *Sign.* `I` can be negative (channels more important to `g1`). The absolute value is taken
//!   per element before the channel mean (the code's order, §2.2/§11.9), not of the channel mean,
//!   so a channel whose elements lean both ways still scores high.
//! - *"Reversed".* The proportions are reversed, the palette is not: the sorted bits `{2,4,8}`
//!   still go from low to high importance (low `|I|` → low bits), as in every allocation.
//! - *Not the original paper's method.* Guo et al.'s own FairQuantize differs (it is not in the
//!   FairQuant repository); this baseline reproduces the row of Table 1, i.e. what the FairQuant
//!   authors ran.

use crate::methods::allocate::AllocationConfig;
use crate::methods::importance::{ImportanceConfig, Reducer};
use crate::train::TrainConfig;

/// `{2, 4, 8}` at `{0.4, 0.4, 0.2}`: FQ-QAT's proportions reversed.
pub fn allocation() -> AllocationConfig {
    AllocationConfig {
        palette: vec![2, 4, 8],
        proportions: Some(vec![0.4, 0.4, 0.2]),
    }
}

/// Turn a FairQuant configuration (its importance, allocation and fine-tuning parts) into
/// FairQuantize's (the fine-tuning budget is kept).
pub fn apply(
    importance: &mut ImportanceConfig,
    allocation_cfg: &mut AllocationConfig,
    finetune: &mut TrainConfig,
) {
    importance.reducer = Reducer::Subtractive;
    importance.subtractive_beta = 1.0;
    *allocation_cfg = allocation();
    finetune.lambda_fair = 0.0;
}
