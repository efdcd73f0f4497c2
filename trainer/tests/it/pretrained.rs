//! The akamaster ResNet-20 on the byte-exact 1000-image CIFAR-10 test subset: 91.5% ± 0.5
//! (DATA.md). This validates the BatchNorm and option-A shortcut lowering end to end. Needs
//! MASQ_DATA_DIR and MASQ_MODELS_DIR; skips with a message when they are unset.

use std::path::PathBuf;

use masq_trainer::data::{DatasetKind, read_cifar_file};
use masq_trainer::model::TchModel;
use masq_trainer::train::evaluate;
use tch::Device;

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}

#[test]
fn akamaster_resnet20_scores_91_5_on_the_exact_subset() {
    let (Some(data), Some(models)) = (env_dir("MASQ_DATA_DIR"), env_dir("MASQ_MODELS_DIR")) else {
        println!("skipped: set MASQ_DATA_DIR and MASQ_MODELS_DIR (e.g. ../shared/data, ../shared/models)");
        return;
    };
    let weights_dir = models.join("akamaster");
    let file = std::fs::read_dir(&weights_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", weights_dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("resnet20-"))
        .expect("resnet20-*.safetensors in MASQ_MODELS_DIR/akamaster");
    let mut g = masq_ir::zoo::build("resnet20", None, 0).unwrap();
    let w = masq_ir::weights::read_safetensors(&file).unwrap();
    masq_ir::zoo::apply_weights(&mut g, &w).unwrap();
    let test = read_cifar_file(DatasetKind::Cifar10, &data.join("cifar10/exact_test_batch_first1000.bin.gz")).unwrap();
    assert_eq!(test.len(), 1000);
    let model = TchModel::from_graph(&g, Device::Cpu).unwrap();
    let r = evaluate(&model, &test, &DatasetKind::Cifar10.default_norm(), 250).unwrap();
    println!("akamaster resnet20 on the exact 1000-image subset: {:.1}%", 100.0 * r.accuracy);
    assert!((r.accuracy - 0.915).abs() <= 0.005, "accuracy {}", r.accuracy);
}
