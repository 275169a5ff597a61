//! Cameras: what an administrator registers (checked here), and the ingestion that
//! watches each active one ([`supervisor`]): frames from its stream ([`source`]), faces
//! followed across frames ([`tracker`]), one verification per walk-past, and the live
//! figures its health reports ([`stats`]).
//!
//! A camera's URL may carry credentials (`rtsp://user:password@host/…`, or a `token=`
//! query parameter of a snapshot URL). The full URL is sealed at rest and opened only by
//! the worker that connects; responses, the audit log and every log line show
//! [`masked_url`].

pub mod preview;
pub mod rtsp;
pub mod source;
pub mod stats;
pub mod supervisor;
pub mod tracker;

use std::net::IpAddr;

use url::Url;

use crate::crypto::Sealer;
use crate::domain::liveness::LivenessMode;
use crate::domain::users::{Invalid, parse_text};
use crate::store::cameras::{CameraFields, CameraRecord};
use crate::store::sealed::camera_url_binding;

const MAX_ID_CHARS: usize = 32;
const MAX_NAME_CHARS: usize = 100;
const MAX_LOCATION_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2_048;
const MAX_CREDENTIAL_CHARS: usize = 200;
pub const MIN_SAMPLE_FPS: f64 = 0.2;
pub const MAX_SAMPLE_FPS: f64 = 10.0;
/// Frames sampled per second when a camera does not say: enough to catch a walk-past (a
/// person crosses a door's view in one to three seconds) at a fraction of the decoding.
pub const DEFAULT_SAMPLE_FPS: f64 = 2.0;
/// What replaces a password or a secret query value in a masked URL.
const MASK: &str = "***";
/// Query parameters whose values are secrets in camera URLs (vendors' snapshot URLs put
/// credentials there: `?user=admin&pwd=…`, `?token=…`).
const SECRET_QUERY_KEYS: [&str; 10] =
    ["password", "passwd", "pass", "pwd", "token", "key", "auth", "secret", "signature", "sig"];

/// Which way people pass a camera: what a log from it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Entry,
    Exit,
    Both,
}

impl Direction {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text {
            "entry" => Ok(Self::Entry),
            "exit" => Ok(Self::Exit),
            "both" => Ok(Self::Both),
            _ => Err(Invalid::new("direction", "must be entry, exit or both")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Exit => "exit",
            Self::Both => "both",
        }
    }
}

/// What a request may say about a camera; on a change, what it leaves out stays as it was.
#[derive(Debug, Clone, Default)]
pub struct CameraInput {
    pub name: Option<String>,
    pub location: Option<String>,
    pub ip_address: Option<String>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub direction: Option<String>,
    pub sample_fps: Option<f64>,
    pub is_active: Option<bool>,
    pub liveness_mode: Option<String>,
}

/// A camera's settings, checked, with the URL in the clear (credentials included).
#[derive(Debug, Clone)]
pub struct CameraSpec {
    pub name: String,
    pub location: String,
    pub ip_address: Option<IpAddr>,
    pub url: Url,
    pub direction: Direction,
    pub sample_fps: f64,
    pub is_active: bool,
    /// `passive` or `off`: a camera cannot be asked to turn, so never `active`.
    pub liveness_mode: LivenessMode,
}

impl CameraSpec {
    /// The fields to store for camera `id`, with the URL sealed for its row.
    pub fn seal(&self, id: &str, sealer: &Sealer) -> CameraFields {
        CameraFields {
            name: self.name.clone(),
            location: self.location.clone(),
            ip_address: self.ip_address.map(|ip| ip.to_string()),
            url: sealer.seal(self.url.as_str().as_bytes(), &camera_url_binding(id)),
            masked_url: masked_url(&self.url),
            direction: self.direction.as_str().to_owned(),
            sample_fps: self.sample_fps,
            is_active: self.is_active,
            liveness_mode: self.liveness_mode.as_str().to_owned(),
        }
    }
}

/// A camera id as the spec spells them (`CAM001`): 1 to 32 letters, digits, `-` or `_`.
pub fn camera_id(raw: &str) -> Result<String, Invalid> {
    let id = raw.trim();
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Invalid::new("id", format!("must be 1 to {MAX_ID_CHARS} letters, digits, '-' or '_'")));
    }
    Ok(id.to_owned())
}

/// A new camera's settings from `input`; the name and URL are required.
pub fn new_camera(input: CameraInput) -> Result<CameraSpec, Invalid> {
    let url = input.url.as_deref().ok_or_else(|| Invalid::new("rtsp_url", "is required"))?;
    let url = with_credentials(stream_url(url)?, input.username.as_deref(), input.password.as_deref())?;
    let spec = CameraSpec {
        name: String::new(),
        location: String::new(),
        ip_address: None,
        url,
        direction: Direction::Entry,
        sample_fps: DEFAULT_SAMPLE_FPS,
        is_active: true,
        liveness_mode: LivenessMode::Passive,
    };
    if input.name.is_none() {
        return Err(Invalid::new("name", "is required"));
    }
    changed_camera(spec, CameraInput { url: None, username: None, password: None, ..input })
}

/// `current` with what `input` says applied. A new URL brings its own credentials; one
/// without any keeps the current ones, and `username` / `password` replace them (an empty
/// username removes both).
pub fn changed_camera(current: CameraSpec, input: CameraInput) -> Result<CameraSpec, Invalid> {
    let mut spec = current;
    if let Some(name) = &input.name {
        spec.name = parse_text("name", name, MAX_NAME_CHARS)?;
        if spec.name.is_empty() {
            return Err(Invalid::new("name", "is required"));
        }
    }
    if let Some(location) = &input.location {
        spec.location = parse_text("location", location, MAX_LOCATION_CHARS)?;
    }
    if let Some(url) = &input.url {
        let mut url = stream_url(url)?;
        if url.username().is_empty() {
            let _ = url.set_username(spec.url.username());
            let _ = url.set_password(spec.url.password());
        }
        spec.url = url;
    }
    spec.url = with_credentials(spec.url, input.username.as_deref(), input.password.as_deref())?;
    match input.ip_address.as_deref().map(str::trim) {
        Some("") => spec.ip_address = None,
        Some(ip) => {
            spec.ip_address =
                Some(ip.parse().map_err(|_| Invalid::new("ip_address", "is not an IPv4 or IPv6 address"))?)
        }
        None => {}
    }
    if spec.ip_address.is_none() {
        spec.ip_address = host_ip(&spec.url);
    }
    if let Some(direction) = &input.direction {
        spec.direction = Direction::parse(direction)?;
    }
    if let Some(fps) = input.sample_fps {
        if !(MIN_SAMPLE_FPS..=MAX_SAMPLE_FPS).contains(&fps) {
            return Err(Invalid::new(
                "sample_fps",
                format!("must be between {MIN_SAMPLE_FPS} and {MAX_SAMPLE_FPS} frames per second"),
            ));
        }
        spec.sample_fps = fps;
    }
    if let Some(active) = input.is_active {
        spec.is_active = active;
    }
    if let Some(mode) = &input.liveness_mode {
        spec.liveness_mode = match LivenessMode::parse(mode) {
            Some(mode @ (LivenessMode::Passive | LivenessMode::Off)) => mode,
            _ => {
                return Err(Invalid::new(
                    "liveness_mode",
                    "must be passive or off (a camera cannot ask anyone to turn)",
                ));
            }
        };
    }
    Ok(spec)
}

/// A stored camera's settings, its URL opened.
pub fn stored_camera(record: &CameraRecord, sealer: &Sealer) -> anyhow::Result<CameraSpec> {
    let url = sealer.open(&record.url, &camera_url_binding(&record.id))?;
    let url = String::from_utf8(url)
        .ok()
        .and_then(|text| Url::parse(&text).ok())
        .ok_or_else(|| anyhow::anyhow!("camera {}'s sealed URL is not a URL", record.id))?;
    Ok(CameraSpec {
        name: record.name.clone(),
        location: record.location.clone(),
        ip_address: record.ip_address.as_deref().and_then(|ip| ip.parse().ok()),
        url,
        direction: Direction::parse(&record.direction).unwrap_or(Direction::Entry),
        sample_fps: record.sample_fps,
        is_active: record.is_active,
        liveness_mode: LivenessMode::parse(&record.liveness_mode).unwrap_or_default(),
    })
}

/// A stream URL: `rtsp://`, `rtsps://` (H.264 over RTSP), or `http(s)://` (a JPEG snapshot
/// or an MJPEG stream), with a host.
fn stream_url(raw: &str) -> Result<Url, Invalid> {
    const FIELD: &str = "rtsp_url";
    let raw = raw.trim();
    if raw.len() > MAX_URL_CHARS {
        return Err(Invalid::new(FIELD, format!("must be at most {MAX_URL_CHARS} characters")));
    }
    let url = Url::parse(raw).map_err(|e| Invalid::new(FIELD, format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "rtsp" | "rtsps" | "http" | "https") {
        return Err(Invalid::new(FIELD, "must be an rtsp://, rtsps://, http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new(FIELD, "names no host"));
    }
    Ok(url)
}

fn with_credentials(mut url: Url, username: Option<&str>, password: Option<&str>) -> Result<Url, Invalid> {
    for (field, value) in [("username", username), ("password", password)] {
        if value.is_some_and(|v| v.chars().count() > MAX_CREDENTIAL_CHARS || v.chars().any(char::is_control)) {
            return Err(Invalid::new(field, format!("must be at most {MAX_CREDENTIAL_CHARS} printable characters")));
        }
    }
    if let Some(username) = username {
        let _ = url.set_username(username);
        if username.is_empty() {
            let _ = url.set_password(None);
        }
    }
    if let Some(password) = password {
        if url.username().is_empty() {
            return Err(Invalid::new("password", "needs a username"));
        }
        let _ = url.set_password(Some(password).filter(|p| !p.is_empty()));
    }
    Ok(url)
}

fn host_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        // Hosts of non-special schemes (rtsp) are not parsed as addresses by `url`.
        url::Host::Domain(host) => host.trim_start_matches('[').trim_end_matches(']').parse().ok(),
    }
}

/// `url` with its password and the values of secret-looking query parameters replaced by
/// `***`: what responses and log lines show.
pub fn masked_url(url: &Url) -> String {
    let mut masked = url.clone();
    if masked.password().is_some() {
        let _ = masked.set_password(Some(MASK));
    }
    if masked.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let secret = SECRET_QUERY_KEYS.iter().any(|s| key.to_ascii_lowercase().contains(s));
                (key.into_owned(), if secret { MASK.to_owned() } else { value.into_owned() })
            })
            .collect();
        masked.query_pairs_mut().clear().extend_pairs(pairs);
    }
    masked.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> CameraInput {
        CameraInput { name: Some("Main Entrance".into()), url: Some(url.into()), ..CameraInput::default() }
    }

    #[test]
    fn credentials_from_the_body_go_into_the_url_and_never_into_the_masked_one() {
        let spec = new_camera(CameraInput {
            username: Some("admin".into()),
            password: Some("s3cret-pass".into()),
            ..input("rtsp://192.168.1.101:554/stream")
        })
        .unwrap();
        assert_eq!(spec.url.as_str(), "rtsp://admin:s3cret-pass@192.168.1.101:554/stream");
        assert_eq!(masked_url(&spec.url), "rtsp://admin:***@192.168.1.101:554/stream");
        assert_eq!(spec.ip_address, Some("192.168.1.101".parse().unwrap()), "taken from the host");

        let snapshot = new_camera(input("http://cam.local/snap.jpg?user=admin&pwd=hunter2&channel=1")).unwrap();
        assert_eq!(masked_url(&snapshot.url), "http://cam.local/snap.jpg?user=admin&pwd=***&channel=1");
        assert_eq!(snapshot.ip_address, None);
    }

    #[test]
    fn a_changed_url_without_credentials_keeps_the_current_ones() {
        let current = new_camera(input("rtsp://admin:old@10.0.0.5/stream")).unwrap();
        let moved = changed_camera(
            current.clone(),
            CameraInput { url: Some("rtsp://10.0.0.6/stream2".into()), ..CameraInput::default() },
        )
        .unwrap();
        assert_eq!(moved.url.as_str(), "rtsp://admin:old@10.0.0.6/stream2");
        let cleared =
            changed_camera(current, CameraInput { username: Some(String::new()), ..CameraInput::default() }).unwrap();
        assert_eq!(cleared.url.as_str(), "rtsp://10.0.0.5/stream");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |input: CameraInput| new_camera(input).unwrap_err().field;
        assert_eq!(field(input("ftp://cam/stream")), "rtsp_url");
        assert_eq!(field(input("rtsp:///stream")), "rtsp_url");
        assert_eq!(field(input(&format!("rtsp://cam/{}", "a".repeat(3_000)))), "rtsp_url");
        assert_eq!(field(CameraInput { name: None, ..input("rtsp://cam/s") }), "name");
        assert_eq!(field(CameraInput { ip_address: Some("300.1.1.1".into()), ..input("rtsp://cam/s") }), "ip_address");
        assert_eq!(field(CameraInput { direction: Some("sideways".into()), ..input("rtsp://cam/s") }), "direction");
        assert_eq!(field(CameraInput { sample_fps: Some(0.0), ..input("rtsp://cam/s") }), "sample_fps");
        assert_eq!(field(CameraInput { password: Some("x".into()), ..input("rtsp://cam/s") }), "password");
        assert!(camera_id("CAM001").is_ok());
        assert!(camera_id("CAM 1").is_err() && camera_id("").is_err() && camera_id(&"C".repeat(33)).is_err());
    }
}
