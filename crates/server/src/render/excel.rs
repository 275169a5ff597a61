//! The attendance report as an Excel workbook: a summary sheet (totals and departments),
//! the people present per day, one line per person, and every log of the range. Dates and
//! times are real date cells in the institution's time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::ReportHeading;
use crate::domain::report::{AttendanceReport, PersonAttendance};
use crate::store::attendance::AttendanceListing;

/// The report as `.xlsx` bytes.
pub fn attendance_workbook(
    heading: &ReportHeading,
    zone: Tz,
    report: &AttendanceReport,
    people: &[PersonAttendance],
    logs: &[AttendanceListing],
) -> Result<Vec<u8>, XlsxError> {
    let formats = Formats::new();
    let mut workbook = Workbook::new();
    summary_sheet(workbook.add_worksheet().set_name("Summary")?, &formats, heading, report)?;
    daily_sheet(workbook.add_worksheet().set_name("Daily")?, &formats, report)?;
    people_sheet(workbook.add_worksheet().set_name("People")?, &formats, zone, people)?;
    // The longest sheet is written row by row to a temporary file, not held in memory.
    logs_sheet(workbook.add_worksheet_with_constant_memory()?.set_name("Logs")?, &formats, zone, logs)?;
    workbook.save_to_buffer()
}

struct Formats {
    bold: Format,
    date: Format,
    datetime: Format,
    rate: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            bold: Format::new().set_bold(),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            rate: Format::new().set_num_format("0.0%"),
        }
    }
}

fn header(sheet: &mut Worksheet, formats: &Formats, row: u32, titles: &[&str]) -> Result<(), XlsxError> {
    for (column, title) in titles.iter().enumerate() {
        sheet.write_string_with_format(row, column as u16, *title, &formats.bold)?;
    }
    Ok(())
}

fn summary_sheet(
    sheet: &mut Worksheet,
    formats: &Formats,
    heading: &ReportHeading,
    report: &AttendanceReport,
) -> Result<(), XlsxError> {
    sheet.set_column_width(0, 26)?.set_column_width(1, 24)?;
    sheet.write_string_with_format(0, 0, heading.title(), &formats.bold)?;
    let texts = [
        ("Report", heading.report_id.as_str()),
        ("Generated at (UTC)", heading.generated_at.as_str()),
        ("Period", heading.period.as_str()),
        ("Time zone", heading.timezone.as_str()),
        ("Scope", heading.scope.as_deref().unwrap_or("everyone")),
    ];
    let mut row = 2;
    for (label, value) in texts {
        sheet.write_string(row, 0, label)?.write_string(row, 1, value)?;
        row += 1;
    }
    sheet.write_string(row, 0, "From")?.write_datetime_with_format(row, 1, report.range.from, &formats.date)?;
    sheet.write_string(row + 1, 0, "To")?.write_datetime_with_format(row + 1, 1, report.range.to, &formats.date)?;
    row += 2;
    let counts = [
        ("People expected", report.total_employees),
        ("Working days", report.working_days),
        ("Present person-days", report.present_person_days),
        ("Expected person-days", report.expected_person_days),
        ("Arrivals logged", report.total_attendances),
    ];
    for (label, value) in counts {
        sheet.write_string(row, 0, label)?.write_number(row, 1, value as f64)?;
        row += 1;
    }
    sheet.write_string(row, 0, "Attendance rate")?.write_number_with_format(
        row,
        1,
        report.attendance_rate,
        &formats.rate,
    )?;
    row += 2;
    header(sheet, formats, row, &["Department", "People", "Present person-days", "Attendance rate", "Avg per day"])?;
    for (name, stats) in &report.departments {
        row += 1;
        sheet
            .write_string(row, 0, name)?
            .write_number(row, 1, stats.total_employees as f64)?
            .write_number(row, 2, stats.present_person_days as f64)?
            .write_number_with_format(row, 3, stats.attendance_rate, &formats.rate)?
            .write_number(row, 4, stats.avg_daily_attendance)?;
    }
    sheet.set_column_width(2, 20)?.set_column_width(3, 16)?.set_column_width(4, 12)?;
    Ok(())
}

fn daily_sheet(sheet: &mut Worksheet, formats: &Formats, report: &AttendanceReport) -> Result<(), XlsxError> {
    header(sheet, formats, 0, &["Date", "Working day", "People present"])?;
    sheet.set_column_width(0, 12)?.set_column_width(1, 12)?.set_column_width(2, 15)?;
    for (day, row) in report.daily.iter().zip(1..) {
        sheet
            .write_datetime_with_format(row, 0, day.date, &formats.date)?
            .write_boolean(row, 1, day.working_day)?
            .write_number(row, 2, day.present as f64)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn people_sheet(
    sheet: &mut Worksheet,
    formats: &Formats,
    zone: Tz,
    people: &[PersonAttendance],
) -> Result<(), XlsxError> {
    let titles = [
        "Employee ID",
        "Name",
        "Department",
        "Role",
        "Days present",
        "Attendance rate",
        "First arrival",
        "Last arrival",
    ];
    header(sheet, formats, 0, &titles)?;
    for (column, width) in [14, 28, 24, 10, 13, 16, 20, 20].into_iter().enumerate() {
        sheet.set_column_width(column as u16, width)?;
    }
    for (line, row) in people.iter().zip(1..) {
        let person = &line.person;
        sheet
            .write_string(row, 0, &person.employee_id)?
            .write_string(row, 1, person.full_name())?
            .write_string(row, 2, &person.department)?
            .write_string(row, 3, person.role.as_str())?
            .write_number(row, 4, line.days_present as f64)?
            .write_number_with_format(row, 5, line.attendance_rate, &formats.rate)?;
        for (column, arrival) in [(6, line.first_arrival), (7, line.last_arrival)] {
            if let Some(arrival) = arrival {
                sheet.write_datetime_with_format(row, column, local(arrival, zone), &formats.datetime)?;
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn logs_sheet(sheet: &mut Worksheet, formats: &Formats, zone: Tz, logs: &[AttendanceListing]) -> Result<(), XlsxError> {
    let titles = ["Log", "Time", "Employee ID", "Name", "Department", "Source", "Camera", "Confidence", "Status"];
    // Constant-memory sheets take their widths before their rows.
    for (column, width) in [8, 20, 14, 28, 24, 9, 14, 11, 8].into_iter().enumerate() {
        sheet.set_column_width(column as u16, width)?;
    }
    header(sheet, formats, 0, &titles)?;
    for (listing, row) in logs.iter().zip(1..) {
        let log = &listing.record;
        sheet
            .write_number(row, 0, log.id as f64)?
            .write_datetime_with_format(row, 1, local(log.timestamp, zone), &formats.datetime)?
            .write_string(row, 2, &listing.employee_id)?
            .write_string(row, 3, format!("{} {}", listing.first_name, listing.last_name))?
            .write_string(row, 4, &listing.department)?
            .write_string(row, 5, crate::domain::attendance::source_name(&log.source))?
            .write_string(row, 8, &log.status)?;
        if let Some(camera) = &log.camera_id {
            sheet.write_string(row, 6, camera)?;
        }
        if let Some(confidence) = log.confidence {
            sheet.write_number(row, 7, confidence)?;
        }
    }
    Ok(())
}

/// The wall-clock time of `instant` in `zone`, as Excel shows times.
fn local(instant: DateTime<Utc>, zone: Tz) -> chrono::NaiveDateTime {
    instant.with_timezone(&zone).naive_local()
}
