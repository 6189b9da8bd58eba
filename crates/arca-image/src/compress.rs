//! Layer compression: detection and decoding of gzip/zstd input, and a deterministic encoder that
//! compresses on several threads.
//!
//! Design: the output depends only on the data, the codec and the level — never on the number of threads or
//! on timing (reproducible images). For gzip the encoder uses pigz's method: it cuts the stream into 1 MiB
//! chunks, each a raw deflate stream primed with the previous chunk's last 32 KiB as dictionary and ended with
//! a sync flush, compressed on worker threads and concatenated into one gzip member closed by an empty final
//! block, the CRC-32 and the length. For zstd it is libzstd's own multithreaded mode (`ZSTD_c_nbWorkers`, at
//! least one worker, as `zstd -T1` runs): libzstd cuts jobs by size, never by timing, so its output is the
//! same for every worker count ≥ 1, and the compression runs beside the caller's thread (which hashes and
//! parses), as the `zstd` CLI overlaps it with I/O.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

/// A layer codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), the codec every tool understands.
    Gzip,
    /// zstd (RFC 8878): faster and smaller, understood by current container tools.
    Zstd,
}

impl Compression {
    /// The default level of the codec (gzip 6 as `gzip` uses, zstd 3 as `zstd` uses).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        }
    }

    /// Guesses the codec from the first bytes of a blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this codec.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The codec named by a layer media type (OCI or Docker), if it names one.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Wraps `reader` in the decoder its first bytes call for (plain data passes through).
pub(crate) fn decoder<'a>(
    reader: impl Read + Send + 'a,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    let codec = Compression::sniff(head);
    let boxed: Box<dyn Read + Send + 'a> = match codec {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((codec, boxed))
}

const GZIP_CHUNK: usize = 1 << 20;
const DICT: usize = 32 * 1024;
/// A gzip header with no name, no mtime, no extra flags and OS "unknown" (255): fixed bytes for reproducibility.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
/// A final, empty, fixed-Huffman deflate block: closes a stream whose chunks ended with sync flushes.
const DEFLATE_FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

fn compress_chunk(level: u32, data: &[u8], dict: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    loop {
        let consumed = usize::try_from(c.total_in()).map_err(io::Error::other)?;
        c.compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Sync)
            .map_err(io::Error::other)?;
        let done = usize::try_from(c.total_in()).map_err(io::Error::other)? == data.len();
        if done && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

/// A compressing writer whose output does not depend on its thread count. Call [`ChunkedEncoder::finish`] to
/// close the stream; dropping it without finishing leaves the output truncated.
pub(crate) enum ChunkedEncoder<W: Write> {
    /// gzip in pigz-style chunks.
    Gzip(GzipChunks<W>),
    /// zstd in libzstd's multithreaded mode.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> ChunkedEncoder<W> {
    /// A new encoder writing `codec` at `level` to `out`, using `threads` worker threads (gzip: 0 or 1
    /// compresses on the caller's thread; zstd: always at least one worker beside the caller's thread).
    /// `Compression::None` is not an encoder: callers write plain tars directly.
    pub(crate) fn new(out: W, codec: Compression, level: i32, threads: usize) -> io::Result<Self> {
        match codec {
            Compression::Gzip => {
                let level = u32::try_from(level.clamp(1, 9)).map_err(io::Error::other)?;
                Ok(ChunkedEncoder::Gzip(GzipChunks::new(out, level, threads)))
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, level.clamp(1, 22))?;
                let workers = u32::try_from(threads.clamp(1, 64)).map_err(io::Error::other)?;
                enc.multithread(workers)?;
                Ok(ChunkedEncoder::Zstd(enc))
            }
            Compression::None => Err(io::Error::other("ChunkedEncoder needs a codec")),
        }
    }

    /// Writes the remaining data and the stream trailer; returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            ChunkedEncoder::Gzip(g) => g.finish(),
            ChunkedEncoder::Zstd(z) => {
                let mut out = z.finish()?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

impl<W: Write> Write for ChunkedEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            ChunkedEncoder::Gzip(g) => g.write(data),
            ChunkedEncoder::Zstd(z) => z.write(data),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            ChunkedEncoder::Gzip(g) => g.write_all(data),
            ChunkedEncoder::Zstd(z) => z.write_all(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing would end a zstd block early (changing the output); `finish` writes everything.
        Ok(())
    }
}

/// The gzip encoder: pigz-style chunks, compressed on worker threads when there are several.
pub(crate) struct GzipChunks<W: Write> {
    /// Always `Some` until `finish` takes it.
    out: Option<W>,
    level: u32,
    chunk: usize,
    buf: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    started: bool,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    inflight: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_inflight: usize,
}

impl<W: Write> GzipChunks<W> {
    fn new(out: W, level: u32, threads: usize) -> Self {
        let chunk = GZIP_CHUNK;
        let mut enc = GzipChunks {
            out: Some(out),
            level,
            chunk,
            buf: Vec::with_capacity(chunk),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            started: false,
            jobs: None,
            workers: Vec::new(),
            inflight: VecDeque::new(),
            max_inflight: threads.max(1) * 2,
        };
        if threads > 1 {
            let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..threads {
                let rx = Arc::clone(&rx);
                enc.workers.push(std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A send error means the encoder was dropped: nothing waits for this result.
                    let _ = job.reply.send(compress_chunk(level, &job.data, &job.dict));
                }));
            }
            enc.jobs = Some(tx);
        }
        enc
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("encoder already finished"))
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            self.out()?.write_all(&GZIP_HEADER)?;
        }
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        self.start()?;
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(DICT)..].to_vec();
        match self.jobs.clone() {
            None => {
                let compressed = compress_chunk(self.level, &data, &dict)?;
                self.out()?.write_all(&compressed)?;
            }
            Some(jobs) => {
                while self.inflight.len() >= self.max_inflight {
                    self.drain_one()?;
                }
                let (reply, rx) = mpsc::sync_channel(1);
                jobs.send(Job { data, dict, reply })
                    .map_err(|_| io::Error::other("compression worker stopped"))?;
                self.inflight.push_back(rx);
            }
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.inflight.pop_front() {
            let compressed = rx
                .recv()
                .map_err(|_| io::Error::other("compression worker stopped"))??;
            self.out()?.write_all(&compressed)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.start()?;
        if !self.buf.is_empty() {
            self.submit()?;
        }
        while !self.inflight.is_empty() {
            self.drain_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.out()?.write_all(&DEFLATE_FINAL_EMPTY_BLOCK)?;
        let crc = std::mem::take(&mut self.crc).finalize();
        self.out()?.write_all(&crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32 (RFC 1952).
        let isize = (self.total & 0xffff_ffff) as u32;
        self.out()?.write_all(&isize.to_le_bytes())?;
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("encoder already finished"))?;
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for GzipChunks<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        self.crc.update(data);
        self.total += n as u64;
        while !data.is_empty() {
            let room = self.chunk - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk {
                self.submit()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for GzipChunks<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.inflight.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: words with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample {}\n", i % 97).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn encode(codec: Compression, data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc = ChunkedEncoder::new(Vec::new(), codec, codec.default_level(), threads).unwrap();
        // Odd write sizes cross chunk boundaries.
        for part in data.chunks(777_777) {
            enc.write_all(part).unwrap();
        }
        enc.finish().unwrap()
    }

    fn decode(bytes: &[u8]) -> Vec<u8> {
        let (_, mut r) = decoder(bytes).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn gzip_output_round_trips_and_does_not_depend_on_thread_count() {
        let data = sample(5 * GZIP_CHUNK + 12345);
        let one = encode(Compression::Gzip, &data, 1);
        let three = encode(Compression::Gzip, &data, 3);
        assert_eq!(one, three);
        assert_eq!(decode(&one), data);
        assert!(one.len() < data.len() / 4, "dictionary priming keeps the ratio");
    }

    #[test]
    fn gzip_output_is_read_by_the_gzip_tool() {
        let Some(gzip) = arca_testkit::require_tool("gzip") else {
            return;
        };
        let data = sample(2 * GZIP_CHUNK + 7);
        let enc = encode(Compression::Gzip, &data, 2);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        std::fs::write(&p, &enc).unwrap();
        let out = std::process::Command::new(gzip)
            .arg("-dc")
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn zstd_output_round_trips_and_does_not_depend_on_thread_count() {
        let data = sample(40 << 20);
        let one = encode(Compression::Zstd, &data, 1);
        let two = encode(Compression::Zstd, &data, 2);
        let four = encode(Compression::Zstd, &data, 4);
        assert_eq!(one, two);
        assert_eq!(one, four);
        assert_eq!(decode(&one), data);
    }

    #[test]
    fn empty_streams_are_valid() {
        assert_eq!(decode(&encode(Compression::Gzip, &[], 1)), b"");
        assert_eq!(decode(&encode(Compression::Zstd, &[], 2)), b"");
    }

    #[test]
    fn sniffs_codecs_by_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
    }
}
