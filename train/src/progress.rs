//! Progress of a run: a bar with ETA, loss and the chosen metric on a terminal; plain lines,
//! one per epoch and a final summary, everywhere else (a pipe, a log file, CI).
//!
//! The bar counts the batches of the epoch budget. A run that stops early leaves the bar
//! where it was (it does not jump to 100%) and the summary is printed on a line of its own.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How the trainer shows its progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when standard output is a terminal, plain lines otherwise (the default).
    #[default]
    Auto,
    /// Always the bar (on standard output).
    Bar,
    /// Always plain lines: one per epoch, then a summary.
    Lines,
    /// Nothing.
    Silent,
}

/// Where plain lines go: standard output, or a writer the caller gave (tests, a log file).
pub(crate) enum Sink {
    Stdout,
    Writer(Box<dyn Write>),
}

impl Sink {
    fn line(&mut self, text: &str) {
        // Progress output is best effort: a closed pipe must not stop training.
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Sink::Writer(w) => {
                let _ = writeln!(w, "{text}");
                let _ = w.flush();
            }
        }
    }
}

/// The live display of one `fit`.
pub(crate) struct Progress {
    mode: ProgressMode,
    sink: Sink,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Resolves `Auto` against standard output and starts the bar (over `total_batches`,
    /// of which `done_batches` were done before a resume) when there is one.
    pub(crate) fn start(
        mode: ProgressMode,
        sink: Sink,
        total_batches: Option<u64>,
        done_batches: u64,
    ) -> Progress {
        let to_writer = matches!(sink, Sink::Writer(_));
        let mode = match mode {
            ProgressMode::Auto if !to_writer && std::io::stdout().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            ProgressMode::Bar if to_writer => ProgressMode::Lines,
            other => other,
        };
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = match total_batches {
                Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout()),
            };
            let template = if total_batches.is_some() {
                "{bar:30} {percent:>3}% ETA {eta:>4} {msg}"
            } else {
                "{spinner} {elapsed:>4} {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(done_batches);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { mode, sink, bar }
    }

    /// After each batch: moves the bar and shows the running loss and the last metric.
    pub(crate) fn batch(&self, message: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(message());
        }
    }

    /// After each epoch: its line (plain mode) or the bar's message.
    pub(crate) fn epoch(&mut self, line: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.set_message(line.to_string()),
            (None, ProgressMode::Lines) => self.sink.line(line),
            _ => {}
        }
    }

    /// A message of its own, above the bar (plain mode: a line).
    pub(crate) fn note(&mut self, text: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(text),
            (None, ProgressMode::Lines) => self.sink.line(text),
            _ => {}
        }
    }

    /// Ends the display: the bar stays where it is and the summary gets its own line.
    pub(crate) fn finish(mut self, summary: &str) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        if self.mode != ProgressMode::Silent {
            self.sink.line(summary);
        }
    }
}
