//! Progress bars (on stderr; hidden when stderr is not a terminal or output is JSON).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `msg`.
pub fn bar(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// The bar of a `masq_trainer::reduce` run: one pass per stage, reset every epoch, with the
/// stage, epoch, running loss and live ReLU count; `label` prefixes the message.
#[cfg(feature = "train")]
#[derive(Debug, Default)]
pub struct ReduceBar {
    bar: Option<ProgressBar>,
    epochs: usize,
    label: String,
    quiet: bool,
}

#[cfg(feature = "train")]
impl ReduceBar {
    pub fn new(label: &str, quiet: bool) -> Self {
        ReduceBar { bar: None, epochs: 0, label: label.to_string(), quiet }
    }

    /// Draw a `Stage` or `Batch` event (other events are the caller's).
    pub fn update(&mut self, e: &masq_trainer::reduce::ReduceEvent) {
        use masq_trainer::reduce::ReduceEvent;
        match e {
            ReduceEvent::Stage { stage, epochs, batches_per_epoch, .. } => {
                self.finish();
                self.epochs = *epochs;
                self.bar = Some(bar(*batches_per_epoch as u64, &format!("{}{stage}", self.label), self.quiet));
            }
            ReduceEvent::Batch { stage, epoch, batch, loss, relu_count } => {
                if let Some(b) = &self.bar {
                    if *batch == 1 {
                        b.reset();
                    }
                    b.set_position(*batch as u64);
                    b.set_message(format!(
                        "{}{stage} {epoch}/{} loss {loss:.3} relus {relu_count}",
                        self.label, self.epochs
                    ));
                }
            }
            ReduceEvent::Epoch(_) => {}
        }
    }

    /// Print a line above the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
