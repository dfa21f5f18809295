//! Run reports: `metrics.csv` (one row per logged step and per evaluation) and a PNG plot of the
//! loss and accuracy curves (drawn as SVG by plotters, rasterised by resvg; text uses whatever
//! system font is installed and is left out where there is none).

use std::path::Path;

use crate::error::{Error, Result};

/// One logged point of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MetricsRow {
    /// Steps taken when the row was logged.
    pub step: u64,
    /// Position in the run in epochs, fractional (the plot's x axis).
    pub epoch: f64,
    /// Learning rate of the logged step.
    pub lr: f32,
    /// Mean loss of the logged training batch (not plotted for evaluation rows).
    pub train_loss: f32,
    /// Fraction of the logged training batch classified right, 0..1 (not plotted for evaluation rows).
    pub train_accuracy: f64,
    /// Set on evaluation rows.
    pub test_accuracy: Option<f64>,
    /// Training throughput, in images per second.
    pub images_per_second: f64,
    /// What the data loader's workers can decode and augment, in images per second (0 where not
    /// measured): when it is below `images_per_second`'s potential, the GPU waits for data.
    pub loader_images_per_second: f64,
    /// Share of the time the training loop waited for the loader's next batch, 0..1.
    pub data_wait: f64,
}

/// Appends `row` to the CSV at `path`, writing the header first when the file is new or empty.
/// Every write is checked (through [`crate::fsio::append`]): a failed append leaves the rows
/// before it as they were.
pub fn append_metrics(path: &Path, row: &MetricsRow) -> Result<()> {
    let new = match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut line = String::new();
    if new {
        line.push_str(
            "step,epoch,lr,train_loss,train_accuracy,test_accuracy,images_per_second,loader_images_per_second,data_wait\n",
        );
    }
    let test = row.test_accuracy.map(|a| format!("{a:.5}")).unwrap_or_default();
    line.push_str(&format!(
        "{},{:.4},{:.6},{:.5},{:.5},{},{:.2},{:.2},{:.4}\n",
        row.step,
        row.epoch,
        row.lr,
        row.train_loss,
        row.train_accuracy,
        test,
        row.images_per_second,
        row.loader_images_per_second,
        row.data_wait
    ));
    crate::fsio::append(path, line.as_bytes()).map(|_| ())
}

/// Reads `metrics.csv` back (for the plot and for resumed runs).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || Error::file(path, format!("line {}: not a metrics row: {line:?}", i + 1));
        if f.len() != 9 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        rows.push(MetricsRow {
            step: num(f[0])? as u64,
            epoch: num(f[1])?,
            lr: num(f[2])? as f32,
            train_loss: num(f[3])? as f32,
            train_accuracy: num(f[4])?,
            test_accuracy: if f[5].is_empty() { None } else { Some(num(f[5])?) },
            images_per_second: num(f[6])?,
            loader_images_per_second: num(f[7])?,
            data_wait: num(f[8])?,
        });
    }
    Ok(rows)
}

#[cfg(feature = "report")]
fn plot_svg(rows: &[MetricsRow], title: &str) -> Result<String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| Error::invalid(format!("plot: {e}"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 700)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, bottom) = root.split_vertically(350);
        let max_epoch = rows.iter().map(|r| r.epoch).fold(1e-9, f64::max);
        let train: Vec<&MetricsRow> = rows.iter().filter(|r| r.test_accuracy.is_none()).collect();
        let max_loss = train.iter().map(|r| r.train_loss as f64).fold(1e-9, f64::max);

        let mut loss = ChartBuilder::on(&top)
            .caption(format!("{title}: training loss"), ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_epoch, 0.0..max_loss * 1.05)
            .map_err(|e| err(&e))?;
        loss.configure_mesh().x_desc("epoch").y_desc("loss").draw().map_err(|e| err(&e))?;
        loss.draw_series(LineSeries::new(train.iter().map(|r| (r.epoch, r.train_loss as f64)), &RED))
            .map_err(|e| err(&e))?;

        let mut acc = ChartBuilder::on(&bottom)
            .caption("accuracy", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_epoch, 0.0..1.0)
            .map_err(|e| err(&e))?;
        acc.configure_mesh().x_desc("epoch").y_desc("accuracy").draw().map_err(|e| err(&e))?;
        acc.draw_series(LineSeries::new(train.iter().map(|r| (r.epoch, r.train_accuracy)), &BLUE))
            .map_err(|e| err(&e))?
            .label("train (batches)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        let test: Vec<(f64, f64)> = rows.iter().filter_map(|r| r.test_accuracy.map(|a| (r.epoch, a))).collect();
        acc.draw_series(LineSeries::new(test.iter().copied(), GREEN.stroke_width(3)))
            .map_err(|e| err(&e))?
            .label("test")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        acc.draw_series(test.iter().map(|&p| Circle::new(p, 4, GREEN.filled()))).map_err(|e| err(&e))?;
        acc.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Writes the loss/accuracy plot as `path` (PNG) and the same plot beside it as SVG, each
/// replaced atomically (through [`crate::fsio::write_atomic`]). Needs the `report` feature (on by
/// default: plotters and resvg).
#[cfg(feature = "report")]
pub fn write_plot(path: &Path, rows: &[MetricsRow], title: &str) -> Result<()> {
    let svg = plot_svg(rows, title)?;
    crate::fsio::write_atomic(path.with_extension("svg"), &svg)?;
    let mut opt = resvg::usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    // plotters asks for the generic "sans-serif", which fontdb maps to Arial by default: point
    // it at a font that is installed (DejaVu Sans on Debian, else the first one found).
    let family = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .find(|n| n == "DejaVu Sans")
        .or_else(|| db.faces().next().and_then(|f| f.families.first().map(|(n, _)| n.clone())));
    if let Some(family) = family {
        db.set_sans_serif_family(family);
    }
    let tree = resvg::usvg::Tree::from_str(&svg, &opt).map_err(|e| Error::invalid(format!("plot: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::invalid("plot: empty canvas"))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let png = pixmap.encode_png().map_err(|e| Error::invalid(format!("plot: {e}")))?;
    crate::fsio::write_atomic(path, png)
}
