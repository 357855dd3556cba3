//! What a run leaves in its log folder: TensorBoard events that TensorBoard's own reader
//! reads back (skipped, with the reason printed, where Python or the `tensorboard` package is
//! missing), JSON lines, and charts in SVG and PNG at slide size.

mod common;

use common::{digits, temp_dir, trainer};
use graphgrad_train::Metric;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Reads every scalar of the event files in `dir` with TensorBoard's EventAccumulator and
/// prints `tag step value` lines; None (with the reason) when it cannot run.
fn read_with_tensorboard(dir: &Path) -> Result<String, String> {
    let script = r#"
import sys
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except Exception as e:
    print("SKIP tensorboard is not importable:", e)
    sys.exit(0)
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
for tag in sorted(acc.Tags()["scalars"]):
    for event in acc.Scalars(tag):
        print(tag, event.step, repr(event.value))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .map_err(|e| format!("python3 cannot be run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("the reader failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    if let Some(reason) = stdout.strip_prefix("SKIP ") {
        return Err(reason.trim().to_string());
    }
    Ok(stdout)
}

#[test]
fn tensorboard_reads_back_every_scalar_of_the_json_lines() {
    let split = digits(160);
    let dir = temp_dir("tensorboard");
    let mut t = trainer(21).epochs(3).log_dir(&dir).log_steps(true).plots(false);
    let history = t.fit(&split.train, Some(&split.validation)).unwrap();
    // the JSON lines hold every value of every epoch
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (line, record) in lines.iter().zip(&history.epochs) {
        assert_eq!(line["epoch"], record.epoch);
        for (name, v) in &record.values {
            let written = line[name].as_f64().unwrap();
            assert!((written - v).abs() <= 1e-15 * v.abs(), "{name}: {written} vs {v}");
        }
    }
    let scalars = match read_with_tensorboard(&dir) {
        Ok(text) => text,
        Err(reason) => {
            println!("skipped: reading the event file back needs Python's tensorboard package ({reason})");
            return;
        }
    };
    let mut read: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for line in scalars.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        read.insert((parts[0].to_string(), parts[1].parse().unwrap()), parts[2].parse().unwrap());
    }
    for record in &history.epochs {
        for (name, &v) in &record.values {
            let got =
                read.get(&(name.clone(), record.epoch as i64)).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(*got, f64::from(v as f32), "{name} at epoch {}", record.epoch);
        }
        assert_eq!(read[&("lr".to_string(), record.epoch as i64)], f64::from(record.lr as f32));
    }
    let steps: Vec<_> = read.keys().filter(|(tag, _)| tag == "step/loss").collect();
    assert_eq!(steps.len(), 3 * 160usize.div_ceil(32));
    for &(step, loss) in &history.steps {
        assert_eq!(read[&("step/loss".to_string(), step as i64)], f64::from(loss as f32));
    }
}

/// Width and height of a PNG file, from its IHDR chunk, and the share of pixels that are
/// not white.
fn png_facts(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let inked = pixels.chunks(channels).filter(|p| p[..3].iter().any(|&c| c < 200)).count();
    (info.width, info.height, inked as f64 / (pixels.len() / channels) as f64)
}

/// The `width` and `height` attributes of an SVG's root element.
fn svg_size(svg: &str) -> (f64, f64) {
    let root = &svg[svg.find("<svg").unwrap()..];
    let root = &root[..root.find('>').unwrap()];
    let attr = |name: &str| -> f64 {
        let at = root.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        root[at..].split('"').next().unwrap().trim_end_matches("px").parse().unwrap()
    };
    (attr("width"), attr("height"))
}

/// The smallest `font-size` in an SVG.
fn smallest_font(svg: &str) -> f64 {
    svg.match_indices("font-size=\"")
        .map(|(i, m)| {
            svg[i + m.len()..].split('"').next().unwrap().trim_end_matches("px").parse::<f64>().unwrap()
        })
        .fold(f64::MAX, f64::min)
}

#[test]
fn fit_writes_slide_sized_charts_in_svg_and_png() {
    let split = digits(400);
    let dir = temp_dir("plots");
    let mut t =
        trainer(22).epochs(6).metrics(&[Metric::Accuracy, Metric::MacroF1, Metric::PerClass]).log_dir(&dir);
    t.fit(&split.train, Some(&split.validation)).unwrap();
    for stem in ["learning_curves", "confusion_matrix"] {
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        let (w, h) = svg_size(&svg);
        let (pw, ph, inked) = png_facts(&dir.join(format!("{stem}.png")));
        assert_eq!((f64::from(pw), f64::from(ph)), (w, h), "{stem}: the PNG is the SVG rendered at 1:1");
        // slide size: at least 1280 px wide for the curves (three panels of 900), fonts of
        // at least 24 px (readable at the back of a room when the figure fills a slide)
        assert!(smallest_font(&svg) >= 24.0, "{stem}: smallest font {}", smallest_font(&svg));
        assert!(inked > 0.01 && inked < 0.6, "{stem}: {inked:.3} of the pixels are drawn");
        if stem == "learning_curves" {
            assert_eq!((w, h), (2700.0, 720.0)); // three panels of 900 × 640, the title band 2 × 40
            for text in ["loss", "accuracy", "macro f1", "training", "validation", "best: epoch"] {
                assert!(svg.contains(text), "{stem} lacks {text:?}");
            }
        } else {
            assert!(w >= 700.0 && h >= 700.0, "{w}×{h}");
            assert!(svg.contains("predicted class") && svg.contains("true class"));
        }
    }
}
