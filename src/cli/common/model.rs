//! The CLI side of the one model loader, [`ModelSpec`]: loading with context, zoo models built for a
//! dataset, weights from a state dict, and the facts (dataset, classes, normalisation, accuracy) a
//! loaded model carries into an export.

use std::path::Path;

use anyhow::{Context, Result};
use masq_exporter::ExportFacts;
use masq_exporter::ModelSpec;
use masq_exporter::model_spec::LoadedModel;
use masq_ir::Graph;
use masq_ir::checkpoint::Facts;
use masq_ir::facts::{dataset_classes, zoo_facts};
use masq_ir::zoo::{self, KeyRemap, ZooConfig, ZooSpec};

/// Load MODEL with what its file records (a checkpoint's facts, an artifact's manifest).
pub fn load(spec: &ModelSpec) -> Result<LoadedModel> {
    spec.load_with_facts().with_context(|| format!("loading {spec}"))
}

/// Load MODEL's graph.
pub fn load_graph(spec: &ModelSpec) -> Result<Graph> {
    spec.load().with_context(|| format!("loading {spec}"))
}

/// The zoo configuration of `zoo:NAME[@HxW]`: the model's own channels at the given size.
pub fn zoo_config(z: &ZooSpec) -> ZooConfig {
    let mut cfg = ZooConfig::new(&z.name);
    if let Some((h, w)) = z.input_hw {
        let c = zoo::MODELS.iter().find(|(m, _)| *m == z.name).map_or(3, |(_, (c, _, _))| *c);
        cfg.input = Some((c, h, w));
    }
    cfg
}

/// MODEL as a command that trains or evaluates on a dataset sees it: a zoo model is built for the
/// dataset's images (`shape` = channels, height, width; an explicit `@HxW` must match them) and
/// `classes`, with seeded random weights; anything else is loaded as it is.
#[cfg(feature = "train")]
pub fn load_for_data(spec: &ModelSpec, shape: [usize; 3], classes: usize, seed: u64) -> Result<LoadedModel> {
    let ModelSpec::Zoo(z) = spec else {
        return load(spec);
    };
    let [c, h, w] = shape;
    if let Some(hw) = z.input_hw
        && hw != (h, w)
    {
        anyhow::bail!("{spec}: input {}x{} but the dataset's images are {h}x{w}", hw.0, hw.1);
    }
    let mut cfg = ZooConfig::new(&z.name);
    cfg.input = Some((c, h, w));
    cfg.num_classes = classes;
    cfg.seed = seed;
    let graph = zoo::build_with(&cfg).with_context(|| format!("building {spec}"))?;
    Ok(LoadedModel { graph, facts: None, manifest: None })
}

/// The model a training command (`reduce`, `prune`) starts from: MODEL built or loaded for the
/// dataset's images, `weights` applied, and the normalisation it records (else the dataset's
/// default). Refuses a model fixed to one batch size, as mini-batch training needs any batch.
#[cfg(feature = "train")]
pub fn load_trainable(
    spec: &ModelSpec,
    weights: Option<&Path>,
    splits: &masq_trainer::data::Splits,
    kind: masq_trainer::data::DatasetKind,
    seed: u64,
    command: &str,
) -> Result<(Graph, masq_ir::facts::Normalisation)> {
    let mut loaded = load_for_data(spec, splits.train.shape, splits.train.classes, seed)?;
    if let Some(w) = weights {
        apply_weights(&mut loaded.graph, w, &[])?;
    }
    let norm = recorded_normalisation(&loaded).unwrap_or_else(|| kind.default_norm());
    if let Some(f) = super::batch::fixed(&loaded.graph) {
        anyhow::bail!(
            "{}; masq {command} trains in mini-batches and needs a model that runs at any batch \
             (re-export it with a dynamic batch axis, or without the node that mixes the images)",
            f.describe(spec)
        );
    }
    Ok((loaded.graph, norm))
}

/// Apply the tensors of a safetensors file (e.g. a PyTorch state dict; `module.` is stripped) to
/// `graph`, keys renamed by `remap` first.
pub fn apply_weights(graph: &mut Graph, weights: &Path, remap: &[KeyRemap]) -> Result<()> {
    let t = masq_ir::weights::read_safetensors(weights).with_context(|| format!("reading {}", weights.display()))?;
    zoo::apply_weights_remapped(graph, &t, remap).with_context(|| format!("applying {}", weights.display()))
}

/// The normalisation a loaded model records (a checkpoint's facts or an artifact's manifest).
#[cfg(feature = "train")]
pub fn recorded_normalisation(m: &LoadedModel) -> Option<masq_ir::facts::Normalisation> {
    m.facts.as_ref().and_then(Facts::normalisation).or_else(|| m.manifest.as_ref()?.normalisation.clone())
}

/// The export facts of a zoo model (its reference dataset, classes and normalisation).
fn zoo_export_facts(name: &str) -> ExportFacts {
    let f = zoo_facts(name);
    ExportFacts { dataset: f.dataset, classes: f.classes, normalisation: f.normalisation, ..ExportFacts::new(name) }
}

/// Facts a trainer checkpoint records: dataset, accuracy and the normalisation it trained with (on
/// top of the zoo model's, when the graph is one).
pub fn checkpoint_facts(g: &Graph, f: &Facts) -> ExportFacts {
    // A graph built from the zoo carries the zoo model's name.
    let base = g.name.strip_prefix("zoo:").unwrap_or(&g.name);
    let is_zoo = zoo::MODELS.iter().any(|(m, _)| *m == base);
    let mut facts = if is_zoo { zoo_export_facts(base) } else { ExportFacts::new(g.name.clone()) };
    facts.dataset = f.dataset.clone().or(facts.dataset);
    facts.accuracy = f.accuracy;
    if let Some(d) = f.dataset.as_deref() {
        facts.classes = dataset_classes(d);
    }
    if let Some(n) = f.normalisation() {
        // One value for every channel is spelled out per input channel.
        let channels = g.data_inputs().next().and_then(|i| i.shape_at(1).get(1).copied()).unwrap_or(1);
        facts.normalisation = Some(n.per_channel(channels));
    }
    facts
}

/// What an export of `m` (loaded from `spec`) records besides the graph: a zoo model's reference
/// facts, a checkpoint's, an artifact's manifest, or only the graph's name for an ONNX file.
pub fn export_facts(spec: &ModelSpec, m: &LoadedModel) -> ExportFacts {
    if let Some(f) = &m.facts {
        return checkpoint_facts(&m.graph, f);
    }
    if let Some(man) = &m.manifest {
        return ExportFacts {
            dataset: man.dataset.clone(),
            classes: man.classes.clone(),
            normalisation: man.normalisation.clone(),
            accuracy: man.accuracy,
            ..ExportFacts::new(man.architecture.clone())
        };
    }
    match spec.zoo_name() {
        Some(name) => zoo_export_facts(name),
        None => ExportFacts::new(m.graph.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_ir::facts::Normalisation;

    #[test]
    fn zoo_models_export_their_reference_facts() {
        let spec: ModelSpec = "zoo:resnet20".parse().unwrap();
        let m = load(&spec).unwrap();
        let f = export_facts(&spec, &m);
        assert_eq!(f.architecture, "resnet20");
        assert_eq!(f.dataset.as_deref(), Some("cifar10"));
        assert_eq!(f.classes[1], "automobile");
        assert_eq!(f.normalisation, Some(Normalisation::imagenet()));
    }

    #[test]
    fn checkpoint_normalisation_is_spelled_out_per_channel() {
        let g = zoo::build("cnn_small", None, 0).unwrap();
        let mut f = Facts { dataset: Some("synthetic".into()), accuracy: Some(0.5), ..Facts::default() };
        f.other.insert("normalization".into(), serde_json::json!({"mean": [0.5], "std": [0.25]}));
        let e = checkpoint_facts(&g, &f);
        assert_eq!(e.dataset.as_deref(), Some("synthetic"));
        assert_eq!(e.classes.len(), 10);
        assert_eq!(e.accuracy, Some(0.5));
        assert_eq!(e.normalisation, Some(Normalisation { mean: vec![0.5; 3], std: vec![0.25; 3] }));
    }
}
