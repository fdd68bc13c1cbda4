//! The importance heat map: scope scores per layer and channel, one panel per group, so one can
//! see where each group's loss is most sensitive to the weights.

use crate::methods::importance::ScoresFile;
use anyhow::Result;
use fq_eval::plots::{heatmap, HeatmapPanel};
use std::path::Path;

pub fn heatmap_png(scores: &ScoresFile, path: &Path) -> Result<()> {
    let mut panels: Vec<HeatmapPanel> = scores
        .per_group
        .iter()
        .enumerate()
        .map(|(g, rows)| HeatmapPanel {
            title: format!(
                "group {} ({} calibration samples)",
                scores.groups.get(g).map(String::as_str).unwrap_or("?"),
                scores.group_samples.get(g).copied().unwrap_or(0)
            ),
            rows: rows.clone(),
        })
        .collect();
    panels.push(HeatmapPanel {
        title: format!("reduced ({:?})", scores.reducer).to_lowercase(),
        rows: scores.reduced.clone(),
    });
    heatmap(
        path,
        "Group-conditioned Taylor importance per output channel",
        &scores.layers,
        &panels,
    )?;
    Ok(())
}
