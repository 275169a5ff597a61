//! Frames from a camera's stream. `rtsp(s)://` cameras send H.264 ([`super::rtsp`]);
//! `http(s)://` cameras answer either one JPEG per request (a snapshot URL, polled at the
//! sampling rate) or an endless MJPEG stream (`multipart/x-mixed-replace`, read as it
//! comes, sampled by the worker).
//!
//! Errors are in plain words and never carry the URL: it may hold credentials.

use std::time::Duration;

use url::Url;

use super::stats::Status;

/// The largest frame accepted: a 4K JPEG of high quality is about 3 MB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stream may go without sending anything before it counts as stopped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a stream gave no frame, and what that makes the camera.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// [`Status::Offline`] when the camera cannot be reached (it may come back by itself);
    /// [`Status::Error`] when it answers with something unusable (credentials, format).
    pub status: Status,
    pub message: String,
}

impl SourceError {
    pub fn offline(message: impl Into<String>) -> Self {
        Self { status: Status::Offline, message: message.into() }
    }

    pub fn unusable(message: impl Into<String>) -> Self {
        Self { status: Status::Error, message: message.into() }
    }
}

/// One frame of the stream: its size on the wire, and the picture when one was wanted.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: usize,
    pub picture: Option<Picture>,
}

/// A frame's picture: as the camera sent it (JPEG), or decoded (H.264).
#[derive(Debug, Clone)]
pub enum Picture {
    Jpeg(Vec<u8>),
    Rgb(image::RgbImage),
}

impl Picture {
    fn jpeg(jpeg: Vec<u8>) -> Frame {
        Frame { bytes: jpeg.len(), picture: Some(Self::Jpeg(jpeg)) }
    }

    /// Width and height, read from the JPEG header when not decoded.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            Self::Rgb(rgb) => Some(rgb.dimensions()),
            Self::Jpeg(jpeg) => image::ImageReader::new(std::io::Cursor::new(jpeg))
                .with_guessed_format()
                .ok()
                .and_then(|reader| reader.into_dimensions().ok()),
        }
    }
}

/// An open camera stream of any kind.
pub enum Source {
    Http(HttpSource),
    Rtsp(Box<super::rtsp::RtspSource>),
}

impl Source {
    pub async fn open(client: &reqwest::Client, url: &Url) -> Result<Self, SourceError> {
        if url.scheme().starts_with("rtsp") {
            return Ok(Self::Rtsp(Box::new(super::rtsp::RtspSource::open(url).await?)));
        }
        Ok(Self::Http(HttpSource::open(client, url).await?))
    }

    /// `h264`, `jpeg` (snapshots) or `mjpeg`.
    pub fn codec(&self) -> &'static str {
        match self {
            Self::Http(http) => http.codec(),
            Self::Rtsp(_) => "h264",
        }
    }

    /// Whether frames come only when asked for (then the worker asks at its sampling rate).
    pub fn is_polled(&self) -> bool {
        matches!(self, Self::Http(http) if http.is_polled())
    }

    /// The next frame, with its picture when `wanted` (a JPEG camera always sends one).
    pub async fn next_frame(&mut self, wanted: bool) -> Result<Frame, SourceError> {
        match self {
            Self::Http(http) => http.next_frame().await,
            Self::Rtsp(rtsp) => rtsp.next_frame(wanted).await,
        }
    }
}

/// The client every camera connection uses: no proxies (cameras live on the local
/// network), bounded connection and read times.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(STALL_TIMEOUT)
        .build()
        .expect("the camera HTTP client builds")
}

/// An open HTTP camera: a snapshot URL or an MJPEG stream.
pub enum HttpSource {
    Snapshot { client: reqwest::Client, url: Url, first: Option<Vec<u8>> },
    Mjpeg { response: reqwest::Response, parser: MjpegParser },
}

impl HttpSource {
    /// Connects and finds out which kind of camera this is from its answer.
    pub async fn open(client: &reqwest::Client, url: &Url) -> Result<Self, SourceError> {
        let response = get(client, url).await?;
        let content_type = content_type(&response);
        if content_type.starts_with("multipart/") {
            let boundary = boundary(&content_type)
                .ok_or_else(|| SourceError::unusable("the MJPEG stream names no multipart boundary"))?;
            return Ok(Self::Mjpeg { response, parser: MjpegParser::new(&boundary) });
        }
        let first = snapshot(response, &content_type).await?;
        Ok(Self::Snapshot { client: client.clone(), url: url.clone(), first: Some(first) })
    }

    /// `"jpeg"` for snapshots, `"mjpeg"` for streams.
    pub fn codec(&self) -> &'static str {
        match self {
            Self::Snapshot { .. } => "jpeg",
            Self::Mjpeg { .. } => "mjpeg",
        }
    }

    /// Whether frames come only when asked for (then the worker asks at its sampling rate).
    pub fn is_polled(&self) -> bool {
        matches!(self, Self::Snapshot { .. })
    }

    /// The next frame: a new snapshot, or the next JPEG of the stream.
    pub async fn next_frame(&mut self) -> Result<Frame, SourceError> {
        match self {
            Self::Snapshot { client, url, first } => {
                if let Some(jpeg) = first.take() {
                    return Ok(Picture::jpeg(jpeg));
                }
                let response = get(client, url).await?;
                let content_type = content_type(&response);
                Ok(Picture::jpeg(snapshot(response, &content_type).await?))
            }
            Self::Mjpeg { response, parser } => loop {
                if let Some(jpeg) = parser.next_frame() {
                    return Ok(Picture::jpeg(jpeg));
                }
                let chunk = tokio::time::timeout(STALL_TIMEOUT, response.chunk())
                    .await
                    .map_err(|_| stalled())?
                    .map_err(plain)?
                    .ok_or_else(|| SourceError::offline("the camera closed the stream"))?;
                parser.push(&chunk)?;
            },
        }
    }
}

fn stalled() -> SourceError {
    SourceError::offline(format!("the camera sent nothing for {} seconds", STALL_TIMEOUT.as_secs()))
}

async fn get(client: &reqwest::Client, url: &Url) -> Result<reqwest::Response, SourceError> {
    let response = tokio::time::timeout(STALL_TIMEOUT, client.get(url.clone()).send())
        .await
        .map_err(|_| stalled())?
        .map_err(plain)?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(response),
        401 | 403 => Err(SourceError::unusable(format!("the camera refused the credentials (HTTP {status})"))),
        404 => Err(SourceError::unusable("the camera has no such stream or snapshot path (HTTP 404)")),
        500..=599 => Err(SourceError::offline(format!("the camera answered HTTP {status}"))),
        _ => Err(SourceError::unusable(format!("the camera answered HTTP {status}"))),
    }
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// One snapshot's body: a JPEG of at most [`MAX_FRAME_BYTES`].
async fn snapshot(mut response: reqwest::Response, content_type: &str) -> Result<Vec<u8>, SourceError> {
    if response.content_length().is_some_and(|length| length > MAX_FRAME_BYTES as u64) {
        return Err(too_large());
    }
    let mut jpeg = Vec::new();
    while let Some(chunk) =
        tokio::time::timeout(STALL_TIMEOUT, response.chunk()).await.map_err(|_| stalled())?.map_err(plain)?
    {
        if jpeg.len() + chunk.len() > MAX_FRAME_BYTES {
            return Err(too_large());
        }
        jpeg.extend_from_slice(&chunk);
    }
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        let kind = if content_type.is_empty() { "no content type" } else { content_type };
        return Err(SourceError::unusable(format!("the camera's answer is not a JPEG image ({kind})")));
    }
    Ok(jpeg)
}

fn too_large() -> SourceError {
    SourceError::unusable(format!("the camera sent a frame larger than {} MiB", MAX_FRAME_BYTES / (1024 * 1024)))
}

/// A transport error in plain words, without the URL (which may carry credentials).
fn plain(error: reqwest::Error) -> SourceError {
    let error = error.without_url();
    let mut cause = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let what = if error.is_timeout() {
        "the camera did not answer in time"
    } else if error.is_connect() {
        "cannot connect to the camera"
    } else {
        "the connection to the camera failed"
    };
    SourceError::offline(if cause.is_empty() { what.to_owned() } else { format!("{what}: {cause}") })
}

/// The boundary of a `multipart/…; boundary=…` content type.
fn boundary(content_type: &str) -> Option<String> {
    let value = content_type.split(';').find_map(|part| part.trim().strip_prefix("boundary="))?;
    let value = value.trim().trim_matches('"');
    let value = value.strip_prefix("--").unwrap_or(value);
    (!value.is_empty()).then(|| value.to_owned())
}

/// Splits an MJPEG byte stream into its JPEG parts: each part is `--boundary`, headers,
/// an empty line, then the image, sized by `Content-Length` when the camera sends one and
/// otherwise running to the next boundary.
#[derive(Debug)]
pub struct MjpegParser {
    delimiter: Vec<u8>,
    buffer: Vec<u8>,
}

impl MjpegParser {
    pub fn new(boundary: &str) -> Self {
        Self { delimiter: format!("--{boundary}").into_bytes(), buffer: Vec::new() }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), SourceError> {
        if self.buffer.len() + chunk.len() > MAX_FRAME_BYTES + 64 * 1024 {
            return Err(too_large());
        }
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    /// The next complete JPEG in the buffer, if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let start = memchr::memmem::find(&self.buffer, &self.delimiter)?;
            let headers_at = start + self.delimiter.len();
            let headers_len = memchr::memmem::find(&self.buffer[headers_at..], b"\r\n\r\n")?;
            let body_at = headers_at + headers_len + 4;
            let headers =
                String::from_utf8_lossy(&self.buffer[headers_at..headers_at + headers_len]).to_ascii_lowercase();
            let length =
                headers.lines().find_map(|line| line.strip_prefix("content-length:")?.trim().parse::<usize>().ok());
            let body_end = match length {
                Some(length) if self.buffer.len() >= body_at + length => body_at + length,
                Some(_) => return None,
                None => body_at + memchr::memmem::find(&self.buffer[body_at..], &self.delimiter)?,
            };
            let body = self.buffer[body_at..body_end].to_vec();
            self.buffer.drain(..body_end);
            let body = trim_line_end(body);
            if body.starts_with(&[0xFF, 0xD8]) {
                return Some(body);
            }
        }
    }
}

fn trim_line_end(mut body: Vec<u8>) -> Vec<u8> {
    while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        body.pop();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(jpeg: &[u8], with_length: bool) -> Vec<u8> {
        let mut part = b"--myboundary\r\nContent-Type: image/jpeg\r\n".to_vec();
        if with_length {
            part.extend_from_slice(format!("Content-Length: {}\r\n", jpeg.len()).as_bytes());
        }
        part.extend_from_slice(b"\r\n");
        part.extend_from_slice(jpeg);
        part.extend_from_slice(b"\r\n");
        part
    }

    #[test]
    fn mjpeg_parts_come_out_whole_however_the_stream_is_cut() {
        let first = [0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        let second = [0xFF, 0xD8, 9, 8, 0xFF, 0xD9];
        let mut stream = part(&first, true);
        stream.extend(part(&second, false));
        stream.extend(part(&first, false));
        for cut in [1, 3, 7, 1000] {
            let mut parser =
                MjpegParser::new(&boundary("multipart/x-mixed-replace; boundary=\"--myboundary\"").unwrap());
            let mut frames = Vec::new();
            for chunk in stream.chunks(cut) {
                parser.push(chunk).unwrap();
                while let Some(frame) = parser.next_frame() {
                    frames.push(frame);
                }
            }
            // The last part has no length and no boundary after it yet: not complete.
            assert_eq!(frames, [first.to_vec(), second.to_vec()], "cut every {cut} bytes");
        }
    }

    #[test]
    fn an_endless_part_is_refused_rather_than_buffered() {
        let mut parser = MjpegParser::new("b");
        parser.push(b"--b\r\n\r\n\xFF\xD8").unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        let refused = (0..20).map(|_| parser.push(&chunk)).find(Result::is_err);
        assert_eq!(refused.unwrap().unwrap_err().status, Status::Error);
    }
}
