//! ONNX import (in progress).
use crate::{Graph, Result};
pub fn import_file(_p: &std::path::Path) -> Result<Graph> { unimplemented!() }
