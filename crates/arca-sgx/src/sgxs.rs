//! SGXS streams: the measurement records of an enclave, with their data, in load order.

use std::io::{self, Read, Write};

use crate::error::Error;
use crate::identity::Mrenclave;
use crate::measure::{
    check_eadd, MeasurementBuilder, CHUNK_SIZE, PAGE_SIZE, TAG_EADD, TAG_ECREATE, TAG_EEXTEND,
};
use crate::secinfo::SecinfoFlags;

const TAG_UNSIZED: [u8; 8] = *b"UNSIZED\0";
const TAG_UNMEASRD: [u8; 8] = *b"UNMEASRD";
const HEADER: usize = 64;
const DATA: usize = 256;

/// One record of an SGXS stream (Fortanix's SGX stream format).
///
/// A canonical SGXS file is exactly the byte sequence that MRENCLAVE hashes — ECREATE, then for each page in
/// increasing offset order an EADD followed by the EEXTENDs of its chunks — plus two extension records that
/// are not hashed: `UNSIZED` (an ECREATE whose enclave size is decided by the loader) and `UNMEASRD` (a chunk
/// that is loaded but not measured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgxsRecord<'a> {
    /// `ECREATE\0`: SSAFRAMESIZE (u32) @8, SIZE (u64) @12.
    Ecreate {
        /// Pages per SSA frame.
        ssaframesize: u32,
        /// Enclave size in bytes (a power of two).
        size: u64,
    },
    /// `UNSIZED\0`: like ECREATE, but the enclave size is left to the loader, which writes it as a u64 at
    /// enclave offset `size_offset`. Such a stream has no MRENCLAVE until it is sized.
    Unsized {
        /// Pages per SSA frame.
        ssaframesize: u32,
        /// Where (enclave offset) the loader writes the chosen size.
        size_offset: u64,
    },
    /// `EADD\0\0\0\0`: the page's enclave offset (u64) @8, SECINFO flags (u64) @16.
    Eadd {
        /// Enclave offset of the page.
        offset: u64,
        /// Page type and permissions.
        flags: SecinfoFlags,
    },
    /// `EEXTEND\0`: the chunk's enclave offset (u64) @8, then 256 data bytes; measured.
    Eextend {
        /// Enclave offset of the chunk.
        offset: u64,
        /// The chunk's content.
        data: &'a [u8; 256],
    },
    /// `UNMEASRD`: laid out like EEXTEND; the data is loaded but not measured.
    Unmeasured {
        /// Enclave offset of the chunk.
        offset: u64,
        /// The chunk's content.
        data: &'a [u8; 256],
    },
}

impl SgxsRecord<'_> {
    /// The record's 64-byte header, as stored (and, for ECREATE/EADD/EEXTEND, as hashed).
    pub fn header(&self) -> [u8; 64] {
        let mut h = [0u8; HEADER];
        let (tag, a, b): ([u8; 8], u64, Option<u64>) = match *self {
            SgxsRecord::Ecreate { ssaframesize, size } => (TAG_ECREATE, u64::from(ssaframesize), Some(size)),
            SgxsRecord::Unsized {
                ssaframesize,
                size_offset,
            } => (TAG_UNSIZED, u64::from(ssaframesize), Some(size_offset)),
            SgxsRecord::Eadd { offset, flags } => (TAG_EADD, offset, Some(flags.bits())),
            SgxsRecord::Eextend { offset, .. } => (TAG_EEXTEND, offset, None),
            SgxsRecord::Unmeasured { offset, .. } => (TAG_UNMEASRD, offset, None),
        };
        h[..8].copy_from_slice(&tag);
        match self {
            SgxsRecord::Ecreate { .. } | SgxsRecord::Unsized { .. } => {
                // SSAFRAMESIZE is a u32 @8, SIZE a u64 @12 (packed).
                h[8..12].copy_from_slice(&(a as u32).to_le_bytes());
                h[12..20].copy_from_slice(&b.unwrap_or(0).to_le_bytes());
            }
            _ => {
                h[8..16].copy_from_slice(&a.to_le_bytes());
                if let Some(b) = b {
                    h[16..24].copy_from_slice(&b.to_le_bytes());
                }
            }
        }
        h
    }

    /// The 256 data bytes that follow the header (EEXTEND and UNMEASRD only).
    pub fn data(&self) -> Option<&[u8; 256]> {
        match self {
            SgxsRecord::Eextend { data, .. } | SgxsRecord::Unmeasured { data, .. } => Some(data),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            SgxsRecord::Ecreate { .. } => "ECREATE",
            SgxsRecord::Unsized { .. } => "UNSIZED",
            SgxsRecord::Eadd { .. } => "EADD",
            SgxsRecord::Eextend { .. } => "EEXTEND",
            SgxsRecord::Unmeasured { .. } => "UNMEASRD",
        }
    }
}

/// The canonical-order rules, shared by the reader and the writer.
#[derive(Debug, Default)]
struct Canonical {
    /// `Some(size)` after ECREATE, `Some(None)` after UNSIZED.
    created: Option<Option<u64>>,
    last_page: Option<u64>,
    last_chunk: Option<u64>,
}

impl Canonical {
    /// Checks that `record` may come next; the problem is described in words.
    fn accept(&mut self, record: &SgxsRecord<'_>) -> Result<(), String> {
        match *record {
            SgxsRecord::Ecreate { ssaframesize, size } => {
                if self.created.is_some() {
                    return Err("a second ECREATE/UNSIZED record; only the first record may create".into());
                }
                MeasurementBuilder::ecreate(ssaframesize, size).map_err(|e| e.to_string())?;
                self.created = Some(Some(size));
            }
            SgxsRecord::Unsized { ssaframesize, .. } => {
                if self.created.is_some() {
                    return Err("a second ECREATE/UNSIZED record; only the first record may create".into());
                }
                if ssaframesize == 0 {
                    return Err("SSAFRAMESIZE must be at least 1 page".into());
                }
                self.created = Some(None);
            }
            SgxsRecord::Eadd { offset, flags } => {
                let Some(size) = self.created else {
                    return Err("EADD before ECREATE; the stream must start with ECREATE or UNSIZED".into());
                };
                check_eadd(offset, flags, size.unwrap_or(u64::MAX)).map_err(|e| e.to_string())?;
                if let Some(last) = self.last_page {
                    if offset <= last {
                        return Err(format!(
                            "EADD at {offset:#x} is out of order: pages must come in increasing offset order \
                             (previous page {last:#x})"
                        ));
                    }
                }
                self.last_page = Some(offset);
                self.last_chunk = None;
            }
            SgxsRecord::Eextend { offset, .. } | SgxsRecord::Unmeasured { offset, .. } => {
                let what = record.name();
                if self.created.is_none() {
                    return Err(format!(
                        "{what} before ECREATE; the stream must start with ECREATE or UNSIZED"
                    ));
                }
                if !offset.is_multiple_of(CHUNK_SIZE) {
                    return Err(format!("{what} at {offset:#x} is not aligned to 256 bytes"));
                }
                let page = offset & !(PAGE_SIZE - 1);
                match self.last_page {
                    None => return Err(format!("{what} at {offset:#x} without a preceding EADD")),
                    Some(last) if last != page => {
                        return Err(format!(
                            "{what} at {offset:#x} is not in the page of the preceding EADD ({last:#x})"
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(last) = self.last_chunk {
                    if offset <= last {
                        return Err(format!(
                            "{what} at {offset:#x} is out of order: chunks of a page must come in increasing \
                             offset order (previous chunk {last:#x})"
                        ));
                    }
                }
                self.last_chunk = Some(offset);
            }
        }
        Ok(())
    }
}

/// Reads an SGXS stream record by record, checking that it is canonical.
///
/// Rejected, with the record's index and byte position: a truncated record, an unknown tag, non-zero padding,
/// a stream that does not start with ECREATE/UNSIZED, pages out of increasing order or unaligned, chunks
/// outside the page of the preceding EADD or out of order, and anything EADD itself refuses.
pub struct SgxsReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    position: u64,
    index: u64,
    rules: Canonical,
}

impl<R: Read> SgxsReader<R> {
    /// The buffer starts small (short streams, fuzzing) and doubles up to `BUFFER` as a stream proves long.
    const FIRST_BUFFER: usize = 8 << 10;
    const BUFFER: usize = 1 << 20;

    /// Reads from `inner` (buffered internally: pass a `File` directly).
    pub fn new(inner: R) -> Self {
        SgxsReader {
            inner,
            buf: vec![0u8; Self::FIRST_BUFFER],
            start: 0,
            end: 0,
            position: 0,
            index: 0,
            rules: Canonical::default(),
        }
    }

    fn error(&self, problem: impl Into<String>) -> Error {
        Error::Sgxs {
            record: self.index,
            position: self.position,
            problem: problem.into(),
        }
    }

    /// Makes at least `n` bytes available from `start`; returns how many are (fewer only at end of stream).
    fn fill(&mut self, n: usize) -> Result<usize, Error> {
        if self.end - self.start >= n {
            return Ok(self.end - self.start);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() < Self::BUFFER && self.position >= self.buf.len() as u64 {
            let doubled = (self.buf.len() * 2).min(Self::BUFFER);
            self.buf.resize(doubled, 0);
        }
        while self.end < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("SGXS: reading record {} at byte {}", self.index, self.position),
                        source,
                    })
                }
            }
        }
        Ok(self.end)
    }

    /// The next record, or `None` at the end of the stream.
    pub fn next_record(&mut self) -> Result<Option<SgxsRecord<'_>>, Error> {
        let have = self.fill(HEADER)?;
        if have == 0 {
            if self.rules.created.is_none() {
                return Err(self.error("empty stream: an SGXS stream starts with an ECREATE record"));
            }
            return Ok(None);
        }
        if have < HEADER {
            return Err(self.error(format!("truncated record: {have} of 64 header bytes")));
        }
        let h = &self.buf[self.start..self.start + HEADER];
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&h[..8]);
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut ssa = [0u8; 4];
        ssa.copy_from_slice(&h[8..12]);
        // (header kind, first byte that must be zero)
        let (kind, padding_from) = match tag {
            TAG_ECREATE => (0, 20),
            TAG_UNSIZED => (1, 20),
            TAG_EADD => (2, 24),
            TAG_EEXTEND => (3, 16),
            TAG_UNMEASRD => (4, 16),
            other => {
                return Err(self.error(format!(
                    "unknown record tag {:?} ({}); expected ECREATE, EADD, EEXTEND, UNSIZED or UNMEASRD",
                    String::from_utf8_lossy(&other),
                    hex::encode(other)
                )))
            }
        };
        if let Some(i) = h[padding_from..].iter().position(|b| *b != 0) {
            return Err(self.error(format!(
                "non-zero byte at offset {} of a {} record, where the format requires zero",
                padding_from + i,
                String::from_utf8_lossy(&tag).trim_end_matches('\0')
            )));
        }
        let (a32, a64, b64) = (u32::from_le_bytes(ssa), word(8), word(16));
        let size_field = word(12);
        let total = if kind >= 3 { HEADER + DATA } else { HEADER };
        if kind >= 3 {
            let have = self.fill(total)?;
            if have < total {
                return Err(self.error(format!(
                    "truncated record: EEXTEND/UNMEASRD needs 256 data bytes after its header, {} present",
                    have - HEADER
                )));
            }
        }
        let start = self.start;
        let data: Option<&[u8; 256]> = self.buf[start + HEADER..start + total]
            .as_chunks::<256>()
            .0
            .first()
            .filter(|_| kind >= 3);
        let record = match (kind, data) {
            (0, _) => SgxsRecord::Ecreate {
                ssaframesize: a32,
                size: size_field,
            },
            (1, _) => SgxsRecord::Unsized {
                ssaframesize: a32,
                size_offset: size_field,
            },
            (2, _) => SgxsRecord::Eadd {
                offset: a64,
                flags: SecinfoFlags::from_bits(b64),
            },
            (3, Some(data)) => SgxsRecord::Eextend { offset: a64, data },
            (_, Some(data)) => SgxsRecord::Unmeasured { offset: a64, data },
            (_, None) => return Err(self.error("internal: record without its data")),
        };
        if let Err(problem) = self.rules.accept(&record) {
            return Err(Error::Sgxs {
                record: self.index,
                position: self.position,
                problem,
            });
        }
        self.start += total;
        self.position += total as u64;
        self.index += 1;
        Ok(Some(record))
    }
}

impl<R> std::fmt::Debug for SgxsReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SgxsReader")
            .field("position", &self.position)
            .field("record", &self.index)
            .finish()
    }
}

/// The result of measuring an SGXS stream: MRENCLAVE and what the stream held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SgxsMeasurement {
    /// The enclave's MRENCLAVE.
    pub mrenclave: Mrenclave,
    /// SSAFRAMESIZE from ECREATE (pages per SSA frame).
    pub ssaframesize: u32,
    /// Enclave size in bytes, from ECREATE.
    pub size: u64,
    /// Number of pages added (EADD records).
    pub pages: u64,
    /// Number of measured 256-byte chunks (EEXTEND records).
    pub measured_chunks: u64,
    /// Number of loaded but unmeasured chunks (UNMEASRD records).
    pub unmeasured_chunks: u64,
    /// Length of the stream in bytes.
    pub stream_len: u64,
}

/// Computes MRENCLAVE of an SGXS stream by replaying its records through [`MeasurementBuilder`]
/// (`UNMEASRD` records are skipped; an `UNSIZED` stream is refused: it has no MRENCLAVE yet).
///
/// ```no_run
/// let file = std::fs::File::open("enclave.sgxs")?;
/// let measured = arca_sgx::measure_sgxs(file)?;
/// println!("MRENCLAVE {}", measured.mrenclave);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn measure_sgxs(reader: impl Read) -> Result<SgxsMeasurement, Error> {
    let mut sgxs = SgxsReader::new(reader);
    let mut builder: Option<MeasurementBuilder> = None;
    let (mut ssaframesize, mut pages, mut measured, mut unmeasured) = (0, 0, 0, 0);
    loop {
        let position = sgxs.position;
        let index = sgxs.index;
        let Some(record) = sgxs.next_record()? else { break };
        let step = match (record, builder.as_mut()) {
            (
                SgxsRecord::Ecreate {
                    ssaframesize: ssa,
                    size,
                },
                _,
            ) => {
                ssaframesize = ssa;
                builder = Some(MeasurementBuilder::ecreate(ssa, size)?);
                Ok(())
            }
            (SgxsRecord::Unsized { .. }, _) => Err(Error::Sgxs {
                record: index,
                position,
                problem: "the stream is UNSIZED: its enclave size is chosen at load time, so it has no \
                          MRENCLAVE yet"
                    .into(),
            }),
            (SgxsRecord::Eadd { offset, flags }, Some(b)) => {
                pages += 1;
                b.eadd(offset, flags)
            }
            (SgxsRecord::Eextend { offset, data }, Some(b)) => {
                measured += 1;
                b.eextend(offset, data)
            }
            (SgxsRecord::Unmeasured { .. }, Some(_)) => {
                unmeasured += 1;
                Ok(())
            }
            (_, None) => Err(Error::Sgxs {
                record: index,
                position,
                problem: "record before ECREATE".into(),
            }),
        };
        step?;
    }
    let Some(builder) = builder else {
        return Err(Error::Sgxs {
            record: 0,
            position: 0,
            problem: "the stream has no ECREATE record".into(),
        });
    };
    Ok(SgxsMeasurement {
        ssaframesize,
        size: builder.size(),
        mrenclave: builder.finish(),
        pages,
        measured_chunks: measured,
        unmeasured_chunks: unmeasured,
        stream_len: sgxs.position,
    })
}

/// What [`SgxsWriter::write_page`] writes after a page's EADD.
#[derive(Clone, Copy, Debug)]
pub enum PageContent<'a> {
    /// 16 EEXTEND records: the content is loaded and measured.
    Measured(&'a [u8; 4096]),
    /// 16 UNMEASRD records: the content is loaded but not measured.
    Unmeasured(&'a [u8; 4096]),
    /// Nothing after the EADD: the page is zero and its content is not measured.
    Zero,
}

/// Writes a canonical SGXS stream, refusing records out of canonical order with the same checks as
/// [`SgxsReader`].
#[derive(Debug)]
pub struct SgxsWriter<W: Write> {
    inner: W,
    rules: Canonical,
    position: u64,
    index: u64,
}

impl<W: Write> SgxsWriter<W> {
    /// Starts a stream with ECREATE (`ssaframesize`, `size`).
    pub fn new(inner: W, ssaframesize: u32, size: u64) -> Result<Self, Error> {
        let mut w = SgxsWriter {
            inner,
            rules: Canonical::default(),
            position: 0,
            index: 0,
        };
        w.write_record(&SgxsRecord::Ecreate { ssaframesize, size })?;
        Ok(w)
    }

    /// Starts a stream with UNSIZED: the loader chooses the size and writes it at enclave offset `size_offset`.
    pub fn new_unsized(inner: W, ssaframesize: u32, size_offset: u64) -> Result<Self, Error> {
        let mut w = SgxsWriter {
            inner,
            rules: Canonical::default(),
            position: 0,
            index: 0,
        };
        w.write_record(&SgxsRecord::Unsized {
            ssaframesize,
            size_offset,
        })?;
        Ok(w)
    }

    /// Writes one record (its header, and its 256 data bytes for EEXTEND/UNMEASRD).
    pub fn write_record(&mut self, record: &SgxsRecord<'_>) -> Result<(), Error> {
        if let Err(problem) = self.rules.accept(record) {
            return Err(Error::Sgxs {
                record: self.index,
                position: self.position,
                problem,
            });
        }
        let io = |source| Error::Io {
            context: "SGXS: writing a record".into(),
            source,
        };
        self.inner.write_all(&record.header()).map_err(io)?;
        let mut len = HEADER as u64;
        if let Some(data) = record.data() {
            self.inner.write_all(data).map_err(io)?;
            len += DATA as u64;
        }
        self.position += len;
        self.index += 1;
        Ok(())
    }

    /// Writes a page: its EADD, then its content as `content` says.
    pub fn write_page(
        &mut self,
        offset: u64,
        flags: SecinfoFlags,
        content: PageContent<'_>,
    ) -> Result<(), Error> {
        self.write_record(&SgxsRecord::Eadd { offset, flags })?;
        let (page, measured) = match content {
            PageContent::Measured(p) => (p, true),
            PageContent::Unmeasured(p) => (p, false),
            PageContent::Zero => return Ok(()),
        };
        for (i, data) in (0u64..).zip(page.as_chunks::<256>().0) {
            let offset = offset + i * CHUNK_SIZE;
            let record = if measured {
                SgxsRecord::Eextend { offset, data }
            } else {
                SgxsRecord::Unmeasured { offset, data }
            };
            self.write_record(&record)?;
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.inner.flush().map_err(|source| Error::Io {
            context: "SGXS: flushing the stream".into(),
            source,
        })?;
        Ok(self.inner)
    }
}
