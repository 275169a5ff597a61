//! Reports as files people hand on: PDF documents and Excel workbooks. Pure functions from
//! a computed report to bytes; nothing here reads the database.

pub mod excel;
pub mod pdf;

/// What a report file says about itself.
#[derive(Debug, Clone)]
pub struct ReportHeading {
    pub report_id: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub period: String,
    /// The IANA name of the zone the dates are in.
    pub timezone: String,
    /// Who the report covers when not everyone: a department, a list of people.
    pub scope: Option<String>,
}

impl ReportHeading {
    pub fn title(&self) -> String {
        "Attendance report".to_owned()
    }
}

/// A rate as a percentage with one decimal.
pub fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}
