//! The attendance report as a PDF: title, range, the totals, a chart of the people present
//! per day and the per-department table, on as many A4 pages as the table needs. Standard
//! PDF fonts only (Helvetica), so no font file ships with the binary; characters outside
//! their Latin character set print as `?`.

use printpdf::{
    BuiltinFont, Color, IndirectFontRef, Line, Mm, PdfDocument, PdfDocumentReference, PdfLayerReference, Point, Rect,
    Rgb,
};

use super::{ReportHeading, percent};
use crate::domain::report::{AttendanceReport, DayAttendance};

const PAGE_WIDTH: f32 = 210.0;
const PAGE_HEIGHT: f32 = 297.0;
const MARGIN: f32 = 20.0;
const TABLE_ROW: f32 = 6.5;
/// More days than this are charted a bar per group of consecutive days.
const MAX_BARS: usize = 62;
/// The longest department name printed in full.
const MAX_NAME_CHARS: usize = 48;

/// The report as PDF bytes.
pub fn attendance_pdf(heading: &ReportHeading, report: &AttendanceReport) -> Result<Vec<u8>, printpdf::Error> {
    let (doc, page, layer) = PdfDocument::new(heading.title(), Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), "report");
    let fonts = Fonts {
        regular: doc.add_builtin_font(BuiltinFont::Helvetica)?,
        bold: doc.add_builtin_font(BuiltinFont::HelveticaBold)?,
    };
    let mut pen = Pen { layer: doc.get_page(page).get_layer(layer), fonts, y: PAGE_HEIGHT - MARGIN };
    pen.text(&heading.title(), 20.0, MARGIN, true);
    pen.down(8.0);
    pen.text(&format!("{} ({}), time zone {}", report.range, heading.period, heading.timezone), 11.0, MARGIN, false);
    pen.down(5.5);
    pen.text(&format!("Report {}, generated {}", heading.report_id, heading.generated_at), 9.0, MARGIN, false);
    if let Some(scope) = &heading.scope {
        pen.down(5.0);
        pen.text(&format!("Scope: {scope}"), 9.0, MARGIN, false);
    }
    pen.down(12.0);
    summary(&mut pen, report);
    pen.down(10.0);
    chart(&mut pen, &report.daily);
    pen.down(14.0);
    departments(&mut pen, &doc, report);
    doc.save_to_bytes()
}

struct Fonts {
    regular: IndirectFontRef,
    bold: IndirectFontRef,
}

/// Where the next line goes, on the current page.
struct Pen {
    layer: PdfLayerReference,
    fonts: Fonts,
    /// Millimetres from the bottom of the page.
    y: f32,
}

impl Pen {
    fn text(&self, text: &str, size: f32, x: f32, bold: bool) {
        self.text_at(text, size, (x, self.y), bold);
    }

    fn text_at(&self, text: &str, size: f32, (x, y): (f32, f32), bold: bool) {
        let font = if bold { &self.fonts.bold } else { &self.fonts.regular };
        self.layer.use_text(printable(text), size, Mm(x), Mm(y), font);
    }

    fn down(&mut self, millimetres: f32) {
        self.y -= millimetres;
    }

    fn fill(&self, (r, g, b): (f32, f32, f32)) {
        self.layer.set_fill_color(Color::Rgb(Rgb::new(r, g, b, None)));
    }

    fn rule(&self, from: (f32, f32), to: (f32, f32)) {
        let point = |(x, y): (f32, f32)| (Point::new(Mm(x), Mm(y)), false);
        self.layer.add_line(Line { points: vec![point(from), point(to)], is_closed: false });
    }
}

const BLACK: (f32, f32, f32) = (0.0, 0.0, 0.0);
const BAR: (f32, f32, f32) = (0.18, 0.42, 0.71);
const REST_DAY_BAR: (f32, f32, f32) = (0.65, 0.72, 0.80);

fn summary(pen: &mut Pen, report: &AttendanceReport) {
    let lines = [
        ("Attendance rate", percent(report.attendance_rate)),
        ("People expected", report.total_employees.to_string()),
        ("Working days", report.working_days.to_string()),
        ("Present person-days", format!("{} of {} expected", report.present_person_days, report.expected_person_days)),
        ("Arrivals logged", report.total_attendances.to_string()),
    ];
    for (label, value) in lines {
        pen.text(label, 11.0, MARGIN, true);
        pen.text(&value, 11.0, MARGIN + 55.0, false);
        pen.down(6.5);
    }
}

/// Bars of the people present per day (lighter on days off), a group of days per bar
/// when the range is long.
fn chart(pen: &mut Pen, daily: &[DayAttendance]) {
    let title = if daily.len() > MAX_BARS { "People present (average per day)" } else { "People present per day" };
    pen.text(title, 12.0, MARGIN, true);
    pen.down(4.0);
    let height = 60.0;
    let width = PAGE_WIDTH - 2.0 * MARGIN - 12.0;
    let (left, bottom) = (MARGIN + 12.0, pen.y - height);
    let bars = bars(daily);
    let highest = bars.iter().map(|bar| bar.value).fold(0.0_f64, f64::max).max(1.0);
    pen.fill(BLACK);
    pen.rule((left, bottom), (left + width, bottom));
    pen.rule((left, bottom), (left, bottom + height));
    pen.text_at(&format_count(highest), 7.0, (MARGIN, bottom + height - 2.0), false);
    pen.text_at("0", 7.0, (MARGIN + 8.0, bottom), false);
    let slot = width / bars.len().max(1) as f32;
    for bar in &bars {
        let x = left + slot * bar.index as f32 + slot * 0.15;
        let top = bottom + (bar.value / highest) as f32 * (height - 4.0);
        pen.fill(if bar.working { BAR } else { REST_DAY_BAR });
        if top > bottom {
            pen.layer.add_rect(Rect::new(Mm(x), Mm(bottom), Mm(x + slot * 0.7), Mm(top)));
        }
    }
    pen.fill(BLACK);
    if let (Some(first), Some(last)) = (daily.first(), daily.last()) {
        pen.text_at(&first.date.to_string(), 7.0, (left, bottom - 5.0), false);
        pen.text_at(&last.date.to_string(), 7.0, (left + width - 16.0, bottom - 5.0), false);
    }
    pen.y = bottom - 5.0;
}

struct Bar {
    index: usize,
    value: f64,
    working: bool,
}

fn bars(daily: &[DayAttendance]) -> Vec<Bar> {
    let per_bar = daily.len().div_ceil(MAX_BARS).max(1);
    daily
        .chunks(per_bar)
        .enumerate()
        .map(|(index, days)| Bar {
            index,
            value: days.iter().map(|day| day.present as f64).sum::<f64>() / days.len() as f64,
            working: days.iter().any(|day| day.working_day),
        })
        .collect()
}

fn departments(pen: &mut Pen, doc: &PdfDocumentReference, report: &AttendanceReport) {
    let columns = [MARGIN, MARGIN + 92.0, MARGIN + 112.0, MARGIN + 140.0];
    let header = |pen: &mut Pen| {
        pen.text("By department", 12.0, MARGIN, true);
        pen.down(7.0);
        for (title, x) in ["Department", "People", "Rate", "Avg per day"].iter().zip(columns) {
            pen.text(title, 10.0, x, true);
        }
        pen.down(2.0);
        pen.rule((MARGIN, pen.y), (PAGE_WIDTH - MARGIN, pen.y));
        pen.down(TABLE_ROW - 1.0);
    };
    header(pen);
    for (name, stats) in &report.departments {
        if pen.y < MARGIN {
            let (page, layer) = doc.add_page(Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), "report");
            pen.layer = doc.get_page(page).get_layer(layer);
            pen.y = PAGE_HEIGHT - MARGIN;
            header(pen);
        }
        let cells = [
            truncated(name),
            stats.total_employees.to_string(),
            percent(stats.attendance_rate),
            format!("{:.1}", stats.avg_daily_attendance),
        ];
        for (cell, x) in cells.iter().zip(columns) {
            pen.text(cell, 10.0, x, false);
        }
        pen.down(TABLE_ROW);
    }
    if report.departments.is_empty() {
        pen.text("Nobody is expected in this scope.", 10.0, MARGIN, false);
    }
}

fn format_count(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn truncated(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    name.chars().take(MAX_NAME_CHARS - 3).chain("...".chars()).collect()
}

/// `text` in the standard fonts' character set: Latin-1 letters stay, others become `?`.
fn printable(text: &str) -> String {
    text.chars().map(|c| if (c as u32) < 0x100 && !c.is_control() { c } else { '?' }).collect()
}
