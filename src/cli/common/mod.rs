//! What the subcommands share: typed argument parsers, the model loader's CLI side, JSON Lines
//! output, progress bars, units and predictions. A leaf of the command tree: nothing here imports a
//! subcommand, and no subcommand imports another.

pub mod args;
pub mod batch;
pub mod json;
pub mod model;
pub mod predict;
pub mod progress;
pub mod signals;
#[cfg(feature = "train")]
pub mod training;
pub mod units;
