//! Progress bars of the long loops (decoding, synthesis, calibration, training): one place
//! decides how they look and that `--quiet` hides them.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn with `template` (indicatif syntax), hidden unless `show`.
pub fn bar(show: bool, len: u64, template: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
