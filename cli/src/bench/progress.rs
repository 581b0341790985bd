//! The progress bar of `seedbed bench` (indicatif, on stderr; hidden when stderr is not a
//! terminal, where each phase and note is printed as a line instead).

use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Bar {
    current: Mutex<Option<ProgressBar>>,
    terminal: bool,
}

impl Bar {
    pub(crate) fn new() -> Self {
        Self {
            current: Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:>34} [{bar:32}] {pos:>4}/{len:4} {elapsed:>4}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }

    /// Ends the last phase's bar.
    pub(crate) fn done(&self) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            bar.finish();
        }
    }
}

impl seedbed::bench::Progress for Bar {
    fn phase(&self, name: &str, tests: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bar) = current.take() {
            bar.finish();
        }
        if self.terminal {
            let bar = ProgressBar::new(tests)
                .with_style(Self::style())
                .with_prefix(name.to_string());
            *current = Some(bar);
        } else {
            eprintln!("seedbed bench: {name}");
        }
    }

    fn test_done(&self) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            bar.inc(1);
        }
    }

    fn note(&self, text: &str) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("note: {text}")),
            None => eprintln!("note: {text}"),
        }
    }
}
