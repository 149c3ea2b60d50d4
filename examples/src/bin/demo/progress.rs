//! What the demo is doing right now: an `indicatif` spinner (and a call counter) when stdout is a
//! terminal, plain lines otherwise. Every other line goes through [`Progress::line`] so it is
//! printed above the spinner instead of through it.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    phase: Arc<Mutex<String>>,
}

impl Progress {
    /// A spinner on a terminal (with a `done/total` counter when `calls > 1`), plain lines
    /// otherwise.
    pub fn new(calls: u32) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let (bar, template) = if calls > 1 {
                (
                    ProgressBar::new(u64::from(calls)),
                    "{spinner:.green} [{elapsed}] {pos}/{len} calls done · {wide_msg}",
                )
            } else {
                (
                    ProgressBar::new_spinner(),
                    "{spinner:.green} [{elapsed}] {wide_msg}",
                )
            };
            bar.set_draw_target(ProgressDrawTarget::stdout());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self {
            bar,
            phase: Arc::new(Mutex::new(String::from("starting"))),
        }
    }

    /// Prints a line (above the spinner, if any).
    pub fn line(&self, text: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(text.as_ref()),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", text.as_ref());
                let _ = out.flush();
            }
        }
    }

    /// Enters a new phase: the spinner's message, or a plain `… phase` line.
    pub fn phase(&self, text: impl Into<String>) {
        self.phase_shown(text, true);
    }

    /// Enters a new phase; without a spinner, prints the plain line only if `plain`.
    pub fn phase_shown(&self, text: impl Into<String>, plain: bool) {
        let text = text.into();
        match &self.bar {
            Some(bar) => bar.set_message(text.clone()),
            None if plain => self.line(format!("… {text}")),
            None => {}
        }
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }

    /// Updates the spinner's message without a plain line (for ticking counters).
    pub fn tick(&self, text: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.into());
        }
    }

    /// One more call done.
    pub fn call_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// The current phase (for error messages).
    pub fn current(&self) -> String {
        self.phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
