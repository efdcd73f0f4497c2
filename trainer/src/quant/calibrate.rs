//! Activation ranges for linear quantization (docs/ALGORITHMS.md §7): the largest |x| at every
//! activation site (the data input of each Conv and Gemm) over the first calibration batches.

use std::collections::{BTreeMap, HashMap};

use masq_ir::quant::{ActRange, act_sites};
use masq_ir::{Graph, ValueInfo};
use tch::Device;

use crate::data::{Augment, Dataset, Loader, Normalisation};
use crate::error::{Result, TrainerError};
use crate::model::{TchModel, to_array};

/// Runs `graph` in eval mode on the first `batches` batches of `batch_size` images of `data` (in
/// order, no augmentation) and returns each activation site's range, by layer name.
pub fn calibrate(
    graph: &Graph,
    data: &Dataset,
    norm: &Normalisation,
    batches: usize,
    batch_size: usize,
    device: Device,
) -> Result<BTreeMap<String, ActRange>> {
    if batches == 0 || batch_size == 0 {
        return Err(TrainerError::BadConfig { reason: "calibration needs at least one batch of one image".into() });
    }
    if data.is_empty() {
        return Err(TrainerError::BadConfig { reason: "no calibration images".into() });
    }
    let sites = act_sites(graph);
    // Every site's value becomes an extra output of a copy of the graph.
    let mut probe = graph.clone();
    for s in &sites {
        if !probe.outputs.iter().any(|o| o.name == s.value) {
            probe.outputs.push(ValueInfo::new(s.value.clone(), vec![]));
        }
    }
    let model = TchModel::from_graph(&probe, device)?;
    let input = graph
        .data_inputs()
        .next()
        .ok_or_else(|| TrainerError::BadConfig { reason: "the model has no data input".into() })?
        .name
        .clone();
    let loader = Loader::new(data, norm.clone(), Augment::NONE, batch_size, device)?;
    let order = loader.order(None);
    let _guard = tch::no_grad_guard();
    let mut ranges: BTreeMap<String, ActRange> = BTreeMap::new();
    for idx in order.chunks(batch_size).take(batches) {
        let (x, _) = loader.batch(idx, None)?;
        let outs = model.run(HashMap::from([(input.clone(), x)]), false)?;
        for s in &sites {
            let t = outs
                .get(&s.value)
                .ok_or_else(|| TrainerError::MissingValue { node: s.layer.clone(), input: s.value.clone() })?;
            ranges.entry(s.layer.clone()).or_default().observe(&to_array(t)?);
        }
    }
    Ok(ranges)
}
