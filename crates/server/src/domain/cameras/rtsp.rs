//! Frames from an RTSP camera: `retina` speaks RTSP (DESCRIBE, SETUP, PLAY; RTP over the
//! RTSP connection) and hands over H.264 access units, which OpenH264 decodes on a thread
//! of the camera's own. Every frame must be decoded (each depends on the ones before), but
//! only the sampled ones are converted to RGB, which costs as much again.

use std::time::Duration;

use futures::StreamExt as _;
use image::RgbImage;
use retina::client::{Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, ParametersRef};
use tokio::sync::mpsc;
use url::Url;

use super::source::{Frame, Picture, STALL_TIMEOUT, SourceError};

/// How long DESCRIBE, SETUP and PLAY may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest access unit accepted: far above what a 4K camera sends for a keyframe.
const MAX_ACCESS_UNIT_BYTES: usize = 8 * 1024 * 1024;

pub struct RtspSource {
    session: Demuxed,
    stream: usize,
    decoder: DecoderThread,
    /// SPS and PPS (Annex B) to send before the next access unit.
    parameter_sets: Option<Vec<u8>>,
}

impl RtspSource {
    pub async fn open(url: &Url) -> Result<Self, SourceError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect(url)).await.map_err(|_| {
            SourceError::offline(format!(
                "the camera did not start the stream within {} seconds",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
    }

    async fn connect(url: &Url) -> Result<Self, SourceError> {
        let (url, creds) = without_credentials(url);
        let options = SessionOptions::default().creds(creds).user_agent("Rollcall".to_owned());
        let mut session = Session::describe(url, options).await.map_err(rtsp_error)?;
        let (stream, encoding) = session
            .streams()
            .iter()
            .enumerate()
            .find(|(_, s)| s.media() == "video")
            .map(|(i, s)| (i, s.encoding_name().to_owned()))
            .ok_or_else(|| SourceError::unusable("the camera's RTSP stream has no video"))?;
        if encoding != "h264" {
            return Err(SourceError::unusable(format!("the camera's video is {encoding}; only H.264 can be read")));
        }
        session.setup(stream, SetupOptions::default()).await.map_err(rtsp_error)?;
        let session = session.play(PlayOptions::default()).await.map_err(rtsp_error)?.demuxed().map_err(rtsp_error)?;
        let parameter_sets = current_parameter_sets(&session, stream);
        Ok(Self { session, stream, decoder: DecoderThread::start()?, parameter_sets })
    }

    /// The next frame; decoded to RGB only when `wanted`.
    pub async fn next_frame(&mut self, wanted: bool) -> Result<Frame, SourceError> {
        loop {
            let item = tokio::time::timeout(STALL_TIMEOUT, self.session.next())
                .await
                .map_err(|_| {
                    SourceError::offline(format!("the camera sent nothing for {} seconds", STALL_TIMEOUT.as_secs()))
                })?
                .ok_or_else(|| SourceError::offline("the camera closed the stream"))?
                .map_err(rtsp_error)?;
            let CodecItem::VideoFrame(frame) = item else { continue };
            if frame.has_new_parameters() {
                self.parameter_sets = current_parameter_sets(&self.session, self.stream);
            }
            let data = frame.data();
            if data.len() > MAX_ACCESS_UNIT_BYTES {
                return Err(SourceError::unusable("the camera sent a video frame larger than 8 MiB"));
            }
            let mut annex_b = self.parameter_sets.take().unwrap_or_default();
            annex_b.extend(length_prefixed_to_annex_b(data));
            let bytes = data.len();
            let picture = self.decoder.decode(annex_b, wanted).await?;
            return Ok(Frame { bytes, picture: picture.map(Picture::Rgb) });
        }
    }
}

/// Retina takes credentials apart from the URL.
fn without_credentials(url: &Url) -> (Url, Option<Credentials>) {
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: percent_decoded(url.username()),
        password: percent_decoded(url.password().unwrap_or_default()),
    });
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    (bare, creds)
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}

/// An RTSP failure in plain words. Retina's messages name the server's address and the
/// request, never the credentials (they were not in the URL it was given).
fn rtsp_error(error: retina::Error) -> SourceError {
    let message = error.to_string();
    let first_line = message.lines().next().unwrap_or_default().trim();
    let lower = message.to_ascii_lowercase();
    if lower.contains("401") || lower.contains("unauthorized") {
        SourceError::unusable("the camera refused the credentials (RTSP 401)")
    } else if lower.contains("404") {
        SourceError::unusable("the camera has no such RTSP stream (404)")
    } else if lower.contains("connection refused") || lower.contains("unable to connect") {
        SourceError::offline(format!("cannot connect to the camera: {first_line}"))
    } else {
        SourceError::offline(format!("the RTSP stream failed: {first_line}"))
    }
}

fn current_parameter_sets(session: &Demuxed, stream: usize) -> Option<Vec<u8>> {
    match session.streams()[stream].parameters() {
        Some(ParametersRef::Video(video)) => avc_config_to_annex_b(video.extra_data()),
        _ => None,
    }
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The SPS and PPS of an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15), as Annex B.
fn avc_config_to_annex_b(record: &[u8]) -> Option<Vec<u8>> {
    if record.first() != Some(&1) {
        return None;
    }
    let mut annex_b = Vec::new();
    let mut at = 5;
    for count_mask in [0x1f, 0xff] {
        let count = record.get(at)? & count_mask;
        at += 1;
        for _ in 0..count {
            let length = usize::from(u16::from_be_bytes([*record.get(at)?, *record.get(at + 1)?]));
            let unit = record.get(at + 2..at + 2 + length)?;
            annex_b.extend_from_slice(&START_CODE);
            annex_b.extend_from_slice(unit);
            at += 2 + length;
        }
    }
    Some(annex_b)
}

/// NAL units with 4-byte big-endian lengths (how retina hands them over), as Annex B.
fn length_prefixed_to_annex_b(mut data: &[u8]) -> Vec<u8> {
    let mut annex_b = Vec::with_capacity(data.len() + 16);
    while data.len() >= 4 {
        let length = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let Some(unit) = data.get(4..4 + length) else { break };
        annex_b.extend_from_slice(&START_CODE);
        annex_b.extend_from_slice(unit);
        data = &data[4 + length..];
    }
    annex_b
}

/// OpenH264 on a thread of its own: decoding a 1080p frame takes milliseconds, which
/// must not hold up the runtime's threads. One frame is in flight at a time.
struct DecoderThread {
    requests: mpsc::Sender<(Vec<u8>, bool)>,
    pictures: mpsc::Receiver<Result<Option<RgbImage>, String>>,
}

impl DecoderThread {
    fn start() -> Result<Self, SourceError> {
        let (requests, mut incoming) = mpsc::channel::<(Vec<u8>, bool)>(1);
        let (outgoing, pictures) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("rollcall-h264".into())
            .spawn(move || {
                let mut decoder = match openh264::decoder::Decoder::new() {
                    Ok(decoder) => decoder,
                    Err(error) => {
                        let _ = outgoing.blocking_send(Err(format!("the H.264 decoder cannot start: {error}")));
                        return;
                    }
                };
                while let Some((annex_b, wanted)) = incoming.blocking_recv() {
                    let picture = match decoder.decode(&annex_b) {
                        Ok(Some(yuv)) if wanted => Ok(Some(to_rgb(&yuv))),
                        Ok(_) => Ok(None),
                        // A damaged frame (lost packets): the next keyframe repairs the picture.
                        Err(error) => {
                            tracing::debug!(%error, "an H.264 frame did not decode");
                            Ok(None)
                        }
                    };
                    if outgoing.blocking_send(picture).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| SourceError::unusable(format!("cannot start the H.264 decoder: {e}")))?;
        Ok(Self { requests, pictures })
    }

    async fn decode(&mut self, annex_b: Vec<u8>, wanted: bool) -> Result<Option<RgbImage>, SourceError> {
        let stopped = || SourceError::unusable("the H.264 decoder stopped");
        self.requests.send((annex_b, wanted)).await.map_err(|_| stopped())?;
        self.pictures.recv().await.ok_or_else(stopped)?.map_err(SourceError::unusable)
    }
}

fn to_rgb(yuv: &openh264::decoder::DecodedYUV<'_>) -> RgbImage {
    use openh264::formats::YUVSource as _;
    let (width, height) = yuv.dimensions();
    let mut rgb = vec![0u8; yuv.rgb8_len()];
    yuv.write_rgb8(&mut rgb);
    RgbImage::from_raw(width as u32, height as u32, rgb).expect("OpenH264 writes width × height × 3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_from_retina_becomes_annex_b_for_the_decoder() {
        // avcC with one 4-byte SPS and one 2-byte PPS.
        let record = [1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 1, 2, 3, 1, 0, 2, 0x68, 9];
        assert_eq!(avc_config_to_annex_b(&record).unwrap(), [0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 9]);
        assert_eq!(avc_config_to_annex_b(&record[..10]), None, "a truncated record is refused");
        let units = [0, 0, 0, 2, 0x65, 7, 0, 0, 0, 1, 0x41];
        assert_eq!(length_prefixed_to_annex_b(&units), [0, 0, 0, 1, 0x65, 7, 0, 0, 0, 1, 0x41]);
        assert_eq!(length_prefixed_to_annex_b(&[0, 0, 0, 9, 1]), Vec::<u8>::new(), "a cut unit is dropped");
    }

    #[test]
    fn credentials_leave_the_url_for_retina() {
        let url = Url::parse("rtsp://admin:p%40ss@10.0.0.5:554/stream").unwrap();
        let (bare, creds) = without_credentials(&url);
        assert_eq!(bare.as_str(), "rtsp://10.0.0.5:554/stream");
        let creds = creds.unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("admin", "p@ss"));
    }
}
