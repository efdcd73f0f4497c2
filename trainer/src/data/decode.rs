//! The byte-level decoders of the dataset files, apart from the file system and from libtorch:
//! gzip, IDX (MNIST), CIFAR records, JPEG/PNG images, Tiny-ImageNet's `wnids.txt` and
//! `val_annotations.txt`. The loaders of [`super`] read the files and call these; the fuzz targets
//! (`fuzz/`, which cannot link libtorch) compile this very file with `#[path]`, so it depends on
//! nothing of this crate: only `std`, `flate2` and `image`. Errors are plain reasons; the callers
//! add the file name.
//!
//! ```
//! use masq_trainer::data::decode::decode_idx_pair;
//! let mut images = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
//! images.extend_from_slice(&[1, 2, 3, 4]);
//! let labels = [0, 0, 8, 1, 0, 0, 0, 1, 7];
//! let d = decode_idx_pair(&images, &labels, 10).unwrap();
//! assert_eq!((d.shape, d.labels), ([1, 2, 2], vec![7]));
//! ```

use std::io::Read;

use image::DynamicImage;
use image::imageops::FilterType;

/// The gzip magic: a file that starts with it is gunzipped.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `raw` gunzipped when it starts with the gzip magic (every member), else `raw` itself.
pub fn gunzip_if_gz(raw: Vec<u8>) -> Result<Vec<u8>, String> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

/// Images and labels decoded from one pair of files or one record file, u8 NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `N·C·H·W` bytes.
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    /// Channels, height, width.
    pub shape: [usize; 3],
}

/// Which of the two IDX files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxFile {
    Images,
    Labels,
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(w)).ok()
}

/// Decode an IDX images file (magic 2051: `n, h, w`, then `n·h·w` pixels) and its labels file
/// (magic 2049: `n`, then `n` labels, each below `classes`).
pub fn decode_idx_pair(images: &[u8], labels: &[u8], classes: usize) -> Result<Decoded, (IdxFile, String)> {
    let img_err = |reason: String| (IdxFile::Images, reason);
    let lbl_err = |reason: String| (IdxFile::Labels, reason);
    let header = |b: &[u8], len: usize, magic: usize| b.len() >= len && be32(b, 0) == Some(magic);
    if !header(images, 16, 2051) {
        return Err(img_err("not an IDX image file (magic 2051)".into()));
    }
    if !header(labels, 8, 2049) {
        return Err(lbl_err("not an IDX label file (magic 2049)".into()));
    }
    let field = |b: &[u8], at| be32(b, at).unwrap_or(usize::MAX);
    let (n, h, w) = (field(images, 4), field(images, 8), field(images, 12));
    // The header's product may exceed any length (h = w = 2^31): compare without wrapping.
    let pixels = n.checked_mul(h).and_then(|p| p.checked_mul(w));
    if pixels.and_then(|p| p.checked_add(16)) != Some(images.len()) {
        return Err(img_err(format!("{} bytes, header says {n}×{h}×{w}", images.len())));
    }
    let nl = field(labels, 4);
    if nl != n || labels.len() - 8 != n {
        return Err(lbl_err(format!("{nl} labels for {n} images")));
    }
    let labels_v: Vec<i64> = labels[8..].iter().map(|&l| i64::from(l)).collect();
    if let Some((i, l)) = labels_v.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        return Err(lbl_err(format!("label {l} at {i} out of range")));
    }
    Ok(Decoded { images: images[16..].to_vec(), labels: labels_v, shape: [1, h, w] })
}

/// Pixels of one CIFAR image (3×32×32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// Decode CIFAR binary records: each `label_bytes` label bytes (the last one is the label, below
/// `classes`) and [`CIFAR_PIXELS`] pixels; CIFAR-10 has one label byte, CIFAR-100 two.
pub fn decode_cifar(bytes: &[u8], label_bytes: usize, classes: usize) -> Result<Decoded, String> {
    if label_bytes == 0 {
        return Err("a record needs a label byte".into());
    }
    let rec = label_bytes + CIFAR_PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(format!("{} bytes is not a whole number of {rec}-byte records", bytes.len()));
    }
    let n = bytes.len() / rec;
    let mut images = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[label_bytes - 1] as usize;
        if label >= classes {
            return Err(format!("record {i}: label {label} out of range (classes {classes})"));
        }
        labels.push(label as i64);
        images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(Decoded { images, labels, shape: [3, 32, 32] })
}

/// Decode one JPEG/PNG file's bytes to RGB, centre-cropped and resized to `size` (height, width)
/// when given. A size with a zero side is an error.
pub fn decode_image_bytes(bytes: &[u8], size: Option<(usize, usize)>) -> Result<image::RgbImage, String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let img = match size {
        Some((h, w)) => {
            let side = |s: usize| u32::try_from(s).ok().filter(|&s| s > 0);
            let (Some(h), Some(w)) = (side(h), side(w)) else {
                return Err(format!("cannot resize to {w}x{h}"));
            };
            fit(img, h, w)
        }
        None => img,
    };
    Ok(img.to_rgb8())
}

/// The largest centred crop with the aspect ratio `w:h`, resized to `w×h` (both at least 1).
pub fn fit(img: DynamicImage, h: u32, w: u32) -> DynamicImage {
    let (iw, ih) = (img.width(), img.height());
    if (iw, ih) == (w, h) || iw == 0 || ih == 0 {
        return img;
    }
    // Crop width cw and height ch with cw/ch = w/h, as large as fits.
    let (h, w) = (h.max(1), w.max(1));
    let (cw, ch) = if u64::from(iw) * u64::from(h) > u64::from(ih) * u64::from(w) {
        (((u64::from(ih) * u64::from(w)) / u64::from(h)).clamp(1, u64::from(iw)) as u32, ih)
    } else {
        (iw, ((u64::from(iw) * u64::from(h)) / u64::from(w)).clamp(1, u64::from(ih)) as u32)
    };
    let cropped = img.crop_imm((iw - cw) / 2, (ih - ch) / 2, cw, ch);
    cropped.resize_exact(w, h, FilterType::Triangle)
}

/// The WordNet ids of a `wnids.txt` (one per line, blank lines skipped), sorted; none, or one
/// listed twice, is an error.
pub fn parse_wnids(text: &str) -> Result<Vec<String>, String> {
    let mut wnids: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    wnids.sort();
    if wnids.is_empty() {
        return Err("no WordNet ids".into());
    }
    if let Some(w) = wnids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("{} is listed twice", w[0]));
    }
    Ok(wnids)
}

/// The `(file name, label)` pairs of a `val_annotations.txt` (`FILE<TAB>WNID<TAB>...` per line,
/// blank lines skipped); the label is the WNID's index in the sorted `wnids`. A file name must
/// be a plain name (no separator, not `..`); no annotation at all is an error.
pub fn parse_val_annotations(text: &str, wnids: &[String]) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(file), Some(wnid)) = (cols.next(), cols.next()) else {
            return Err(format!("line {}: expected FILE<TAB>WNID<TAB>..., got {line:?}", i + 1));
        };
        let (file, wnid) = (file.trim(), wnid.trim());
        if file.is_empty() || file.contains(['/', '\\']) || file == ".." || file == "." {
            return Err(format!("line {}: bad file name {file:?}", i + 1));
        }
        let Ok(label) = wnids.binary_search_by(|w| w.as_str().cmp(wnid)) else {
            return Err(format!("line {}: {wnid} is not in wnids.txt", i + 1));
        };
        out.push((file.to_string(), label as i64));
    }
    if out.is_empty() {
        return Err("no annotations".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(n: u32, h: u32, w: u32, pixels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [2051, n, h, w] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(pixels);
        b
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&2049u32.to_be_bytes());
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    #[test]
    fn idx_pair_round_trip() {
        let d = decode_idx_pair(&idx_images(2, 1, 3, &[1, 2, 3, 4, 5, 6]), &idx_labels(&[9, 0]), 10).unwrap();
        assert_eq!(d, Decoded { images: vec![1, 2, 3, 4, 5, 6], labels: vec![9, 0], shape: [1, 1, 3] });
    }

    /// Regression (fuzz): `n = 4, h = w = 2^31` with no pixels: `n·h·w` wrapped to 0 = the length
    /// of the data, and `16 + n·h·w` overflowed (capacity overflow further on). Now an error.
    #[test]
    fn idx_header_whose_product_overflows_is_an_error() {
        let images = idx_images(4, 1 << 31, 1 << 31, &[]);
        let (file, reason) = decode_idx_pair(&images, &idx_labels(&[0; 4]), 10).unwrap_err();
        assert_eq!(file, IdxFile::Images);
        assert!(reason.contains("header says 4×2147483648×2147483648"), "{reason}");
        let (file, _) =
            decode_idx_pair(&idx_images(u32::MAX, u32::MAX, u32::MAX, &[]), &idx_labels(&[]), 10).unwrap_err();
        assert_eq!(file, IdxFile::Images);
    }

    #[test]
    fn idx_short_or_mismatched_files_are_errors() {
        assert_eq!(decode_idx_pair(&[0; 15], &idx_labels(&[]), 10).unwrap_err().0, IdxFile::Images);
        let images = idx_images(1, 1, 1, &[7]);
        assert_eq!(decode_idx_pair(&images, &[0, 0, 8, 1], 10).unwrap_err().0, IdxFile::Labels);
        assert_eq!(decode_idx_pair(&images, &idx_labels(&[1, 2]), 10).unwrap_err().0, IdxFile::Labels);
        assert!(decode_idx_pair(&images, &idx_labels(&[10]), 10).unwrap_err().1.contains("out of range"));
    }

    #[test]
    fn cifar_records() {
        let mut rec = vec![3u8];
        rec.extend(std::iter::repeat_n(5u8, CIFAR_PIXELS));
        let d = decode_cifar(&rec, 1, 10).unwrap();
        assert_eq!((d.labels, d.images.len()), (vec![3], CIFAR_PIXELS));
        assert!(decode_cifar(&rec[1..], 1, 10).is_err());
        assert!(decode_cifar(&rec, 1, 3).is_err());
        assert!(decode_cifar(&rec, 0, 10).is_err());
        assert!(decode_cifar(&[], 2, 100).is_err());
    }

    #[test]
    fn gzip_is_optional() {
        assert_eq!(gunzip_if_gz(vec![1, 2]).unwrap(), vec![1, 2]);
        assert!(gunzip_if_gz(vec![0x1f, 0x8b, 0]).is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"idx").unwrap();
        assert_eq!(gunzip_if_gz(gz.finish().unwrap()).unwrap(), b"idx");
    }

    #[test]
    fn images_decode_and_fit() {
        let img = image::RgbImage::from_pixel(6, 2, image::Rgb([1, 2, 3]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        assert_eq!(decode_image_bytes(&png, None).unwrap().dimensions(), (6, 2));
        assert_eq!(decode_image_bytes(&png, Some((3, 1))).unwrap().dimensions(), (1, 3));
        assert_eq!(decode_image_bytes(&png, Some((1, 40))).unwrap().dimensions(), (40, 1));
        assert!(decode_image_bytes(&png, Some((0, 4))).is_err());
        assert!(decode_image_bytes(&png[..20], None).is_err());
    }

    #[test]
    fn tiny_imagenet_text_files() {
        let wnids = parse_wnids("n2\n\n n1 \n").unwrap();
        assert_eq!(wnids, ["n1", "n2"]);
        assert!(parse_wnids(" \n").is_err());
        assert!(parse_wnids("a\na\n").is_err());
        let ann = parse_val_annotations("v0.JPEG\tn2\t0\t0\nv1.JPEG\tn1\n\n", &wnids).unwrap();
        assert_eq!(ann, [("v0.JPEG".to_string(), 1), ("v1.JPEG".to_string(), 0)]);
        for bad in ["v0.JPEG", "../x\tn1", "..\tn1", "v\tn3", "\n"] {
            assert!(parse_val_annotations(bad, &wnids).is_err(), "{bad:?}");
        }
    }
}
