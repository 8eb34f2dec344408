//! `corestore loadgen analyze FILE.json`: the run's summary again, from its file, and an SVG of
//! throughput over time and the latency distribution of each operation type.
//!
//! SVG only: plotters draws text in SVG without fonts; PNG would need its TrueType stack
//! (font-kit and a system font), which this crate does not pull in.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use super::report;

/// Size of the whole picture, pixels.
const PLOT_SIZE: (u32, u32) = (1100, 900);
/// Share of the height for the throughput panel (the rest: latency).
const THROUGHPUT_PANEL_PX: u32 = 450;
/// Line colours, one per operation type in the order they appear.
const COLOURS: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// The JSON file a run wrote.
    file: PathBuf,
    /// Where to write the plot [default: FILE with the extension .svg].
    #[arg(long)]
    svg: Option<PathBuf>,
}

pub fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("reading {}: {e}", args.file.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", args.file.display()))?;
    print!("{}", report::summary(&doc).map_err(|e| format!("{}: {e}", args.file.display()))?);
    let svg = args.svg.unwrap_or_else(|| args.file.with_extension("svg"));
    plot(&doc, &svg)?;
    println!("Plot written to {}", svg.display());
    Ok(())
}

/// One operation type's curves.
struct Curves {
    name: String,
    /// (second, ops/s) and (second, MiB/s).
    ops_per_s: Vec<(f64, f64)>,
    /// (percentile, latency ms).
    latency_ms: Vec<(f64, f64)>,
}

fn curves(doc: &Value) -> Result<Vec<Curves>, String> {
    let ops = doc["ops"].as_array().ok_or("`ops` missing")?;
    ops.iter()
        .map(|o| {
            let name = o["op"].as_str().ok_or("an operation without `op`")?.to_string();
            let series = o["series_per_s"]["ops"].as_array().ok_or_else(|| format!("{name}: no series_per_s"))?;
            let ops_per_s = series.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, v.as_f64().unwrap_or(0.0))).collect();
            let points = o["latency_percentiles_us"].as_array().ok_or_else(|| format!("{name}: no latency_percentiles_us"))?;
            let latency_ms = points.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()? / 1e3))).collect();
            Ok(Curves { name, ops_per_s, latency_ms })
        })
        .collect()
}

fn plot(doc: &Value, path: &Path) -> Result<(), String> {
    let curves = curves(doc)?;
    let context = |e: String| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| context(e.to_string()))?;
    let (top, bottom) = root.split_vertically(THROUGHPUT_PANEL_PX);
    let title = format!("corestore loadgen {} on {}", doc["mode"].as_str().unwrap_or("?"), doc["hosts"][0].as_str().unwrap_or("?"));
    throughput_panel(&top, &curves, &title).map_err(context)?;
    latency_panel(&bottom, &curves).map_err(context)?;
    root.present().map_err(|e| context(e.to_string()))
}

fn throughput_panel(area: &DrawingArea<SVGBackend, plotters::coord::Shift>, curves: &[Curves], title: &str) -> Result<(), String> {
    let seconds = curves.iter().map(|c| c.ops_per_s.len()).max().unwrap_or(1).max(1) as f64;
    let top = curves.iter().flat_map(|c| c.ops_per_s.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title}: operations per second"), ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("seconds").y_desc("ops/s").draw().map_err(|e| e.to_string())?;
    for (i, c) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(c.ops_per_s.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(c.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| e.to_string())
}

fn latency_panel(area: &DrawingArea<SVGBackend, plotters::coord::Shift>, curves: &[Curves]) -> Result<(), String> {
    let low = curves.iter().flat_map(|c| c.latency_ms.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min).max(1e-3);
    let high = curves.iter().flat_map(|c| c.latency_ms.iter().map(|p| p.1)).fold(low * 10.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..100.0, (low * 0.8..high * 1.25).log_scale())
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("percentile").y_desc("latency, ms (log)").draw().map_err(|e| e.to_string())?;
    for (i, c) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(c.latency_ms.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(c.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(c.latency_ms.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|e| e.to_string())?;
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| e.to_string())
}
