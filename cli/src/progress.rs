//! Progress rendering: core reports through [`ostree_core::progress::Progress`], the CLI
//! draws an `indicatif` bar on a terminal and stays silent otherwise (so that scripted runs
//! and upstream's tests see exactly ostree's output).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ostree_core::progress::{NoProgress, Progress};

/// A progress sink for the current process: [`BarProgress`] when stderr is a terminal,
/// [`NoProgress`] otherwise.
pub fn progress() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(BarProgress::new())
    } else {
        Arc::new(NoProgress)
    }
}

/// An `indicatif` bar on stderr: a bar with a count when the phase's total is known, a
/// spinner otherwise.
#[derive(Debug)]
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A hidden bar; the first [`Progress::phase`] shows it.
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(spinner_style());
        BarProgress { bar }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {pos}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress for BarProgress {
    fn phase(&self, label: &str, total: u64) {
        self.bar.reset();
        if total > 0 {
            self.bar.set_style(bar_style());
            self.bar.set_length(total);
            self.bar.disable_steady_tick();
        } else {
            self.bar.set_style(spinner_style());
            self.bar.unset_length();
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
        self.bar.set_message(label.to_owned());
    }

    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_progress_runs_hidden() {
        let p = BarProgress {
            bar: ProgressBar::hidden(),
        };
        p.phase("Scanning", 0);
        p.inc(3);
        p.phase("Writing", 10);
        p.inc(10);
        p.finish();
        assert!(p.bar.is_finished());
    }
}
