//! Results files written by several programs (`bench/results.md`: the CPU, GPU and training
//! benchmarks): each program rewrites only its own `## ` sections and keeps the others, so running
//! one benchmark never erases another's figures.

use std::io;
use std::path::Path;

use fq_runtime::atomic::write_atomic;

/// Writes `text` (the writer's own `#`/`##` sections) to `path` atomically, in place of the old
/// file's sections with the same headings (or those in `own`), keeping every other section where
/// it was; appended at the end when the file had none of them.
pub fn write_keeping_sections(path: &Path, text: &str, own: &[&str]) -> io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let is_heading = |l: &str| l.starts_with("# ") || l.starts_with("## ");
    let mine = |heading: &str| {
        own.contains(&heading)
            || text
                .lines()
                .any(|l| is_heading(l) && l.trim_end() == heading)
    };
    // The old file as (heading, lines) blocks; the preamble has no heading.
    let mut blocks: Vec<(Option<&str>, Vec<&str>)> = vec![(None, Vec::new())];
    for line in old.lines() {
        if is_heading(line) {
            blocks.push((Some(line.trim_end()), Vec::new()));
        }
        blocks.last_mut().expect("never empty").1.push(line);
    }
    let mut parts: Vec<String> = Vec::new();
    let mut inserted = false;
    for (heading, lines) in blocks {
        let body = lines.join("\n").trim().to_string();
        match heading {
            Some(h) if mine(h) => {
                if !inserted {
                    parts.push(text.trim().to_string());
                    inserted = true;
                }
            }
            _ if body.is_empty() => {}
            _ => parts.push(body),
        }
    }
    if !inserted {
        parts.push(text.trim().to_string());
    }
    write_atomic(path, (parts.join("\n\n") + "\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_own_sections_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.md");
        write_keeping_sections(&p, "# CPU\n\n## GEMM\n\nold gemm\n", &[]).unwrap();
        write_keeping_sections(&p, "## Training\n\ntrain 1\n", &[]).unwrap();
        let read = || std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            read(),
            "# CPU\n\n## GEMM\n\nold gemm\n\n## Training\n\ntrain 1\n"
        );
        // The CPU bench rewrites its title and sections in place; the training section stays.
        write_keeping_sections(&p, "# CPU\n\n## GEMM\n\nnew gemm\n", &["## Size"]).unwrap();
        assert_eq!(
            read(),
            "# CPU\n\n## GEMM\n\nnew gemm\n\n## Training\n\ntrain 1\n"
        );
        // A rerun of the training bench replaces its section where it is.
        write_keeping_sections(&p, "## Training\n\ntrain 2\n", &[]).unwrap();
        assert_eq!(
            read(),
            "# CPU\n\n## GEMM\n\nnew gemm\n\n## Training\n\ntrain 2\n"
        );
    }
}
