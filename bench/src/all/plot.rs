//! The report's plots: SVG only, as `loadgen analyze` (plotters draws SVG text without fonts).

use std::path::Path;

use plotters::prelude::*;

/// Width of a plot, and the height of one bar's row.
const WIDTH_PX: u32 = 1000;
const ROW_PX: u32 = 28;
/// Room above and below the bars (caption, axis).
const FRAME_PX: u32 = 110;
const BAR: RGBColor = RGBColor(31, 119, 180);
const COLOURS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// One horizontal bar per (label, ratio), with a vertical line at 1 (as fast as the reference).
pub fn ratio_bars(path: &Path, title: &str, bars: &[(String, f64)]) -> Result<(), String> {
    let context = |e: String| format!("plotting {}: {e}", path.display());
    let height = FRAME_PX + ROW_PX * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH_PX, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| context(e.to_string()))?;
    let top = bars.iter().map(|b| b.1).filter(|r| r.is_finite()).fold(1.0, f64::max) * 1.15;
    let n = bars.len() as i32;
    let label_px = bars.iter().map(|b| b.0.len()).max().unwrap_or(8) as u32 * 7 + 20;
    // Rows as segments, so that each label sits at the centre of its bar.
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..top, (0..n).into_segmented())
        .map_err(|e| context(e.to_string()))?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len().max(1) + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get((n - 1 - *i) as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio")
        .draw()
        .map_err(|e| context(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
            let row = n - 1 - i as i32;
            let mut bar =
                Rectangle::new([(0.0, SegmentValue::Exact(row)), (r.max(0.0), SegmentValue::Exact(row + 1))], BAR.mix(0.8).filled());
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(|e| context(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
            Text::new(format!("{r:.2}"), (r.max(0.0) + top * 0.01, SegmentValue::CenterOf(n - 1 - i as i32)), ("sans-serif", 13))
        }))
        .map_err(|e| context(e.to_string()))?;
    chart
        .draw_series(LineSeries::new([(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))], BLACK.stroke_width(2)))
        .map_err(|e| context(e.to_string()))?;
    root.present().map_err(|e| context(e.to_string()))
}

/// Lines over a log-scale x axis: each series a name and its (x, y) points.
pub fn log_x_lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    let context = |e: String| format!("plotting {}: {e}", path.display());
    let points = || series.iter().flat_map(|s| s.1.iter().copied());
    let x_low = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_high = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if !x_low.is_finite() || x_low <= 0.0 {
        return Err(context("no positive points".into()));
    }
    let y_high = points().map(|p| p.1).fold(0.0, f64::max) * 1.15 + f64::EPSILON;
    let root = SVGBackend::new(path, (WIDTH_PX, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| context(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x_low * 0.7..x_high * 1.4).log_scale(), 0.0..y_high)
        .map_err(|e| context(e.to_string()))?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| context(e.to_string()))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| context(e.to_string()))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(|e| context(e.to_string()))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| context(e.to_string()))?;
    root.present().map_err(|e| context(e.to_string()))
}
