//! Progress of a run: a bar with ETA, loss and the chosen metric on a terminal; plain lines,
//! one per epoch and a final summary, everywhere else (a pipe, a log file, CI).
//!
//! The bar counts the batches of the epoch budget. A run that stops early leaves the bar
//! where it was (it does not jump to 100%) and the summary is printed on a line of its own.
//! [`LoopProgress`] gives a hand-written loop the same behaviour.

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

/// Progress of a hand-written loop over `len` steps (epochs, episodes): a bar with ETA and a
/// message on a terminal; otherwise plain lines `what pos/len: message`, after every step
/// when there are at most 50 of them, else at every 2% and at the end, so a piped or logged
/// run shows where it is. The methods are indicatif's, so a loop written for its bar works
/// unchanged.
///
/// ```
/// use graphgrad_train::progress::LoopProgress;
/// let bar = LoopProgress::new(3, "training");
/// for epoch in 0..3 {
///     bar.set_message(format!("epoch {} loss {:.3}", epoch + 1, 1.0 / (epoch + 1) as f64));
///     bar.inc(1); // piped: "training 1/3: epoch 1 loss 1.000", ...
/// }
/// bar.finish();
/// ```
pub struct LoopProgress {
    bar: Option<ProgressBar>,
    what: String,
    len: u64,
    state: std::cell::RefCell<(u64, String)>,
}

impl LoopProgress {
    /// A display over `len` steps named `what`: a bar when standard output is a terminal.
    pub fn new(len: u64, what: &str) -> LoopProgress {
        LoopProgress::with_mode(len, what, ProgressMode::Auto)
    }

    /// As [`new`](Self::new) with the mode chosen (`Lines` to force plain lines).
    pub fn with_mode(len: u64, what: &str, mode: ProgressMode) -> LoopProgress {
        let terminal = std::io::stdout().is_terminal();
        let bar = match mode {
            ProgressMode::Bar => true,
            ProgressMode::Auto => terminal,
            ProgressMode::Lines | ProgressMode::Silent => false,
        };
        let bar = bar.then(|| {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
            let template = format!("{what} {{bar:30}} {{pos}}/{{len}} ETA {{eta}} {{msg}}");
            bar.set_style(
                ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let len = if mode == ProgressMode::Silent { 0 } else { len };
        LoopProgress { bar, what: what.to_string(), len, state: std::cell::RefCell::new((0, String::new())) }
    }

    /// Sets the message shown with the bar (or in the next plain line).
    pub fn set_message(&self, message: impl Into<String>) {
        let message = message.into();
        if let Some(bar) = &self.bar {
            bar.set_message(message.clone());
        }
        self.state.borrow_mut().1 = message;
    }

    /// Advances by `delta` steps.
    pub fn inc(&self, delta: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(delta);
            return;
        }
        let mut state = self.state.borrow_mut();
        let before = state.0;
        state.0 += delta;
        if self.len == 0 {
            return;
        }
        let every = if self.len <= 50 { 1 } else { self.len.div_ceil(50) };
        if state.0 / every != before / every || state.0 == self.len {
            let message = if state.1.is_empty() { String::new() } else { format!(": {}", state.1) };
            Sink::Stdout.line(&format!("{} {}/{}{message}", self.what, state.0.min(self.len), self.len));
        }
    }

    /// Prints `text` on a line of its own (above the bar).
    pub fn println(&self, text: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(text.as_ref()),
            None if self.len > 0 => Sink::Stdout.line(text.as_ref()),
            None => {}
        }
    }

    /// True only when nothing is shown at all (silent mode): in plain-lines mode the
    /// display prints the message itself.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_none() && self.len == 0
    }

    /// Ends the display, leaving the bar where it stopped (a loop that ends early does not
    /// jump to 100%).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    /// Ends the display and removes the bar.
    pub fn finish_and_clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
