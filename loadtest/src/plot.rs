//! A small hand-written SVG: latency by percentile, and echoes per second.
//!
//! Invariants: output is a self-contained SVG 1.1 document built from the
//! summary alone; every coordinate is finite (empty or flat data gives
//! empty axes, never NaN); text is escaped. The percentile axis is in
//! "nines" (x = -log10(1 - p)) and the latency axis is logarithmic, the
//! usual view of tail latency; the throughput panel shows whole seconds of
//! sending only, so a partial last second does not look like a drop.

use std::fmt::Write;

use crate::report::Summary;

const W: f64 = 900.0;
const H: f64 = 390.0;
const PANEL_W: f64 = 380.0;
const PANEL_H: f64 = 260.0;
const TOP: f64 = 50.0;
const LEFT: f64 = 60.0;
const GAP: f64 = 70.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn nines(pct: f64) -> f64 {
    let rest = (1.0 - pct / 100.0).max(1e-6);
    -rest.log10()
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn polyline(o: &mut String, pts: &[(f64, f64)], colour: &str) {
    let _ = write!(
        o,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points=""#
    );
    for (x, y) in pts {
        let _ = write!(o, "{x:.1},{y:.1} ");
    }
    o.push_str("\"/>\n");
}

fn text(o: &mut String, x: f64, y: f64, size: u32, anchor: &str, s: &str) {
    let _ = writeln!(
        o,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}">{}</text>"#,
        esc(s)
    );
}

/// Panel box, titles, and horizontal grid lines at the given (value, y).
fn panel(o: &mut String, x0: f64, title: &str, xlabel: &str, ylabel: &str, grid: &[(f64, f64)]) {
    let _ = writeln!(
        o,
        r##"<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
    );
    text(o, x0 + PANEL_W / 2.0, TOP - 12.0, 14, "middle", title);
    text(
        o,
        x0 + PANEL_W / 2.0,
        TOP + PANEL_H + 32.0,
        11,
        "middle",
        xlabel,
    );
    text(o, x0, TOP - 28.0, 11, "start", ylabel);
    for &(v, y) in grid {
        let _ = writeln!(
            o,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            x0 + PANEL_W
        );
        text(o, x0 - 4.0, y + 3.0, 10, "end", &short(v));
    }
}

fn latency_panel(o: &mut String, s: &Summary) {
    let x0 = LEFT;
    let curve: Vec<(f64, f64)> = s
        .latency_curve
        .iter()
        .map(|&(p, us)| (nines(p), us.max(0.1)))
        .collect();
    let xmax = curve.iter().map(|p| p.0).fold(1.0f64, f64::max).ceil();
    // Whole decades of µs from below the fastest to above the slowest.
    let lo = curve.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = curve.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let (d0, d1) = if curve.is_empty() {
        (0, 3)
    } else {
        let d0 = lo.log10().floor() as i32;
        (d0, (hi.log10().ceil() as i32).max(d0 + 1))
    };
    let y_of = |us: f64| {
        let f = (us.log10() - f64::from(d0)) / f64::from(d1 - d0);
        TOP + PANEL_H - PANEL_H * f.clamp(0.0, 1.0)
    };
    let grid: Vec<(f64, f64)> = (d0..=d1)
        .map(|d| (10f64.powi(d), y_of(10f64.powi(d))))
        .collect();
    panel(
        o,
        x0,
        "latency by percentile",
        "percentile",
        "µs (log scale)",
        &grid,
    );
    for k in 0..=(xmax as usize) {
        let x = x0 + PANEL_W * k as f64 / xmax;
        let label = match k {
            0 => "0%".to_string(),
            k => format!("{}%", 100.0 - 100.0 / 10f64.powi(k as i32)),
        };
        text(o, x, TOP + PANEL_H + 14.0, 10, "middle", &label);
    }
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .map(|&(n, us)| (x0 + PANEL_W * n / xmax, y_of(us)))
        .collect();
    polyline(o, &pts, "#c0392b");
}

fn throughput_panel(o: &mut String, s: &Summary) {
    let x0 = LEFT + PANEL_W + GAP;
    let whole = (s.sending_seconds.floor() as usize).clamp(1, s.timeline.len().max(1));
    let series = &s.timeline[..whole.min(s.timeline.len())];
    let ymax = nice_max(series.iter().copied().max().unwrap_or(0) as f64);
    let grid: Vec<(f64, f64)> = (0..=4)
        .map(|i| {
            let f = f64::from(i) / 4.0;
            (ymax * f, TOP + PANEL_H - PANEL_H * f)
        })
        .collect();
    panel(
        o,
        x0,
        "echoes per second",
        "seconds since sending started",
        "msg/s",
        &grid,
    );
    let n = whole as f64;
    let pts: Vec<(f64, f64)> = series
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                x0 + PANEL_W * (i as f64 + 0.5) / n,
                TOP + PANEL_H - PANEL_H * v as f64 / ymax,
            )
        })
        .collect();
    polyline(o, &pts, "#2471a3");
    let step = whole.div_ceil(5).max(1);
    for k in (0..=whole).step_by(step) {
        let x = x0 + PANEL_W * k as f64 / n;
        text(o, x, TOP + PANEL_H + 14.0, 10, "middle", &k.to_string());
    }
}

pub fn svg(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    latency_panel(&mut o, s);
    throughput_panel(&mut o, s);
    let footer = format!(
        "{} — {:?}, {} B, {} connections: {:.0} msg/s, p50 {:.0} µs, p99 {:.0} µs, errors {}",
        s.url,
        s.mode,
        s.sizes
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        s.connections_made,
        s.messages_per_sec,
        s.latency_us.p50,
        s.latency_us.p99,
        s.error_total
    );
    text(&mut o, 10.0, H - 10.0, 11, "start", &footer);
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_finite() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert!(nines(100.0).is_finite());
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(esc("a<b&"), "a&lt;b&amp;");
    }
}
