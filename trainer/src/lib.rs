//! # masq-trainer
//!
//! Executes masq IR graphs with tch (libtorch from the project's Python environment, see
//! `scripts/setup.sh`), trains baselines, and cuts ReLUs to a budget (AutoReP, SNL).
//!
//! This crate is filled by the trainer issue; for now it only fixes its place in the workspace.
