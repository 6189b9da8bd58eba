//! A streaming tar reader with limits, and a deterministic tar header writer.
//!
//! Hand-written because layers are untrusted input and the reader must (a) bound every extension header it
//! buffers (GNU long names, PAX records), (b) hand back each entry's raw header bytes so that a rewritten
//! layer copies untouched entries byte for byte, and (c) never interpret a name: names are checked by the
//! caller (see `layer.rs`). Formats read: POSIX ustar, PAX (`x` records; `g` global headers are skipped), GNU
//! (`L`/`K` long names, base-256 numbers). GNU sparse files and multi-volume archives are refused.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;
/// Largest extension header (GNU long name/link, PAX record set) the reader buffers.
pub(crate) const MAX_EXTENSION: u64 = 1 << 20;
/// Longest path or link target accepted (Linux `PATH_MAX`).
pub(crate) const MAX_PATH: usize = 4096;

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

/// One entry's metadata (extension headers already applied).
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) name: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    /// The size the header declared (for a link or directory it may be non-zero; `size` is then 0).
    pub(crate) stored_size: u64,
    pub(crate) mtime: u64,
    pub(crate) uname: Vec<u8>,
    pub(crate) gname: Vec<u8>,
    pub(crate) devmajor: u32,
    pub(crate) devminor: u32,
    /// PAX records other than the ones folded into the fields above (e.g. `SCHILY.xattr.*`), kept in order.
    pub(crate) pax_extra: Vec<(String, Vec<u8>)>,
    /// Every raw header block of this entry, extension headers included (not the data).
    pub(crate) raw: Vec<u8>,
}

/// A streaming tar reader. Use [`TarReader::next_header`], then read the entry's data with
/// [`TarReader::read_data`] / [`TarReader::copy_data`] (or let `next_header` skip it).
pub(crate) struct TarReader<R> {
    inner: R,
    what: String,
    pos: u64,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    done: bool,
    /// True when the archive ended with a zero block (false: at end of stream).
    zero_end: bool,
    /// Skips forward without reading (set for seekable inputs).
    seek: Option<fn(&mut R, u64) -> io::Result<()>>,
    /// True once a skipped byte (padding, unread data) was not zero or was skipped unseen (seek): a writer
    /// that re-emits entries with zero padding then no longer reproduces the input byte for byte.
    skipped_nonzero: bool,
    /// The copy buffer of [`TarReader::copy_data`], allocated once (layers hold tens of thousands of files).
    buf: Vec<u8>,
}

fn parse_octal_or_binary(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256: the first byte's high bit is set; 0xff marks a negative number, which no field we
        // use may hold.
        if field[0] == 0xff {
            return None;
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> TarReader<R> {
    /// Reads a tar stream; `what` names it in errors (e.g. "layer 2 (sha256:…)").
    pub(crate) fn new(inner: R, what: impl Into<String>) -> Self {
        TarReader {
            inner,
            what: what.into(),
            pos: 0,
            remaining: 0,
            padding: 0,
            done: false,
            zero_end: false,
            seek: None,
            skipped_nonzero: false,
            buf: Vec::new(),
        }
    }

    fn err(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Tar {
            what: self.what.clone(),
            offset,
            reason: reason.into(),
        }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    if filled == 0 {
                        return Ok(false);
                    }
                    return Err(self.err(self.pos, "truncated header block"));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::stream("read tar", self.what.clone(), e)),
            }
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        if let Some(seek) = self.seek {
            seek(&mut self.inner, n).map_err(|e| Error::stream("seek tar", self.what.clone(), e))?;
            self.pos += n;
            self.skipped_nonzero |= n > 0;
            return Ok(());
        }
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self
                .inner
                .read(&mut buf[..want])
                .map_err(|e| Error::stream("read tar", self.what.clone(), e))?;
            if got == 0 {
                return Err(self.err(self.pos, "truncated entry data"));
            }
            self.skipped_nonzero |= buf[..got].iter().any(|&b| b != 0);
            n -= got as u64;
            self.pos += got as u64;
        }
        Ok(())
    }

    /// Skips whatever is left of the current entry (data and padding).
    fn finish_entry(&mut self) -> Result<()> {
        let rest = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest)
    }

    /// Reads an extension header's payload (bounded).
    fn read_extension(&mut self, size: u64, kind: &str) -> Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(self.err(
                self.pos,
                format!("{kind} extension header of {size} bytes exceeds the limit of {MAX_EXTENSION}"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| self.err(self.pos, "extension size"))?;
        let padded = len.div_ceil(BLOCK) * BLOCK;
        let mut buf = vec![0u8; padded];
        let mut filled = 0;
        while filled < padded {
            let n = self
                .inner
                .read(&mut buf[filled..])
                .map_err(|e| Error::stream("read tar", self.what.clone(), e))?;
            if n == 0 {
                return Err(self.err(self.pos, format!("truncated {kind} extension header")));
            }
            filled += n;
        }
        self.pos += padded as u64;
        Ok(buf)
    }

    /// The next entry's header, or `None` at the end of the archive. Skips the previous entry's unread data.
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        self.finish_entry()?;
        let mut raw = Vec::with_capacity(BLOCK);
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_exact_counted(&mut block)? {
                if raw.is_empty() {
                    // End of stream at a header boundary without the zero blocks: accepted, as GNU tar does.
                    self.done = true;
                    return Ok(None);
                }
                return Err(self.err(self.pos, "archive ends after an extension header"));
            }
            let here = self.pos - BLOCK as u64;
            if block.iter().all(|&b| b == 0) {
                if !raw.is_empty() {
                    return Err(self.err(here, "zero block after an extension header"));
                }
                self.done = true;
                self.zero_end = true;
                return Ok(None);
            }
            self.check_checksum(&block, here)?;
            raw.extend_from_slice(&block);
            let size = parse_octal_or_binary(&block[124..136])
                .ok_or_else(|| self.err(here, "invalid size field"))?;
            let typeflag = block[156];
            match typeflag {
                b'L' => {
                    let v = self.read_extension(size, "GNU long name")?;
                    raw.extend_from_slice(&v);
                    long_name = Some(cstr(&v[..usize::try_from(size).unwrap_or(0)]).to_vec());
                    continue;
                }
                b'K' => {
                    let v = self.read_extension(size, "GNU long link")?;
                    raw.extend_from_slice(&v);
                    long_link = Some(cstr(&v[..usize::try_from(size).unwrap_or(0)]).to_vec());
                    continue;
                }
                b'x' => {
                    let v = self.read_extension(size, "PAX")?;
                    raw.extend_from_slice(&v);
                    let len = usize::try_from(size).unwrap_or(0);
                    pax.extend(parse_pax(&v[..len]).map_err(|r| self.err(here, r))?);
                    continue;
                }
                b'g' => {
                    // Global PAX headers apply to following entries; no layer writer uses them for fields that
                    // matter here. Skip (bounded), keep the raw bytes so a copied layer stays identical.
                    let v = self.read_extension(size, "PAX global")?;
                    raw.extend_from_slice(&v);
                    continue;
                }
                _ => {}
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::CharDevice,
                b'4' => Kind::BlockDevice,
                b'5' => Kind::Directory,
                b'6' => Kind::Fifo,
                b'S' => return Err(self.err(here, "GNU sparse files are not supported in layers")),
                other => {
                    return Err(self.err(here, format!("unsupported entry type {:?}", char::from(other))))
                }
            };
            let ustar = &block[257..263] == b"ustar\0";
            let mut name = cstr(&block[0..100]).to_vec();
            if ustar {
                let prefix = cstr(&block[345..500]);
                if !prefix.is_empty() {
                    let mut full = prefix.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(&name);
                    name = full;
                }
            }
            let mut hdr = Header {
                name: long_name.take().unwrap_or(name),
                link: long_link
                    .take()
                    .unwrap_or_else(|| cstr(&block[157..257]).to_vec()),
                kind,
                mode: u32::try_from(
                    parse_octal_or_binary(&block[100..108]).ok_or_else(|| self.err(here, "invalid mode"))?
                        & 0o7777,
                )
                .unwrap_or(0o644),
                uid: parse_octal_or_binary(&block[108..116]).ok_or_else(|| self.err(here, "invalid uid"))?,
                gid: parse_octal_or_binary(&block[116..124]).ok_or_else(|| self.err(here, "invalid gid"))?,
                size,
                stored_size: size,
                mtime: parse_octal_or_binary(&block[136..148]).unwrap_or(0),
                uname: cstr(&block[265..297]).to_vec(),
                gname: cstr(&block[297..329]).to_vec(),
                devmajor: u32::try_from(parse_octal_or_binary(&block[329..337]).unwrap_or(0)).unwrap_or(0),
                devminor: u32::try_from(parse_octal_or_binary(&block[337..345]).unwrap_or(0)).unwrap_or(0),
                pax_extra: Vec::new(),
                raw: Vec::new(),
            };
            for (k, v) in pax {
                let num = |v: &[u8]| -> Result<u64> {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.split('.').next())
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| self.err(here, format!("invalid PAX number for `{k}`")))
                };
                match k.as_str() {
                    "path" => hdr.name = v,
                    "linkpath" => hdr.link = v,
                    "size" => {
                        hdr.size = num(&v)?;
                        hdr.stored_size = hdr.size;
                    }
                    "uid" => hdr.uid = num(&v)?,
                    "gid" => hdr.gid = num(&v)?,
                    "mtime" => hdr.mtime = num(&v).unwrap_or(0),
                    "uname" => hdr.uname = v,
                    "gname" => hdr.gname = v,
                    k if k.starts_with("GNU.sparse") => {
                        return Err(self.err(here, "GNU sparse files (PAX) are not supported in layers"))
                    }
                    _ => hdr.pax_extra.push((k, v)),
                }
            }
            if hdr.name.len() > MAX_PATH || hdr.link.len() > MAX_PATH {
                return Err(self.err(here, format!("name or link longer than {MAX_PATH} bytes")));
            }
            // Only regular files carry data; a size on a link, directory or device is ignored by tar readers
            // but we still must skip it to stay in sync.
            self.remaining = hdr.size;
            self.padding = (BLOCK as u64 - hdr.size % BLOCK as u64) % BLOCK as u64;
            if hdr.kind != Kind::File && hdr.kind != Kind::HardLink {
                // Consume (and drop) data of types that never carry any.
                self.finish_entry()?;
                hdr.size = 0;
            } else if hdr.kind == Kind::HardLink {
                // Hard links carry no data in the formats we read; skip any declared bytes.
                self.finish_entry()?;
                hdr.size = 0;
            }
            hdr.raw = raw;
            return Ok(Some(hdr));
        }
    }

    fn check_checksum(&self, block: &[u8; BLOCK], here: u64) -> Result<()> {
        let stored = parse_octal_or_binary(&block[148..156])
            .ok_or_else(|| self.err(here, "invalid checksum field"))?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(self.err(
                here,
                format!("header checksum mismatch (stored {stored}, computed {unsigned})"),
            ));
        }
        Ok(())
    }

    /// Reads the current entry's data into `out` (at most its declared size).
    pub(crate) fn copy_data(&mut self, out: &mut impl Write) -> Result<u64> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(256 * 1024, 0);
        let result = self.copy_data_with(out, &mut buf);
        self.buf = buf;
        result
    }

    fn copy_data_with(&mut self, out: &mut impl Write, buf: &mut [u8]) -> Result<u64> {
        let mut total = 0;
        while self.remaining > 0 {
            let want = usize::try_from(self.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self
                .inner
                .read(&mut buf[..want])
                .map_err(|e| Error::stream("read tar", self.what.clone(), e))?;
            if got == 0 {
                return Err(self.err(self.pos, "truncated entry data"));
            }
            self.pos += got as u64;
            self.remaining -= got as u64;
            total += got as u64;
            out.write_all(&buf[..got])
                .map_err(|e| Error::stream("copy tar entry", self.what.clone(), e))?;
        }
        Ok(total)
    }

    /// Reads the rest of the stream after the end-of-archive marker and discards it (so a hashing reader
    /// below sees every byte, as the blob's digest covers them).
    pub(crate) fn drain(&mut self) -> Result<()> {
        io::copy(&mut self.inner, &mut io::sink())
            .map_err(|e| Error::stream("read tar", self.what.clone(), e))?;
        Ok(())
    }

    /// True once a byte the reader skipped (padding, unread entry data) was not zero, or was skipped with a
    /// seek: re-emitting the entries with zero padding would then not reproduce the input exactly.
    pub(crate) fn skipped_nonzero(&self) -> bool {
        self.skipped_nonzero
    }

    /// True when the archive ended with a zero block (which `next_header` consumed).
    pub(crate) fn ended_with_zero_block(&self) -> bool {
        self.zero_end
    }

    /// The underlying stream, positioned after what was read.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// A reader over the current entry's remaining data.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { r: self }
    }

    /// The position in the uncompressed stream.
    #[allow(dead_code)]
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }
}

impl<R: Read + io::Seek> TarReader<R> {
    /// Reads a seekable tar (an archive file): entry data that is not read is skipped with seeks.
    pub(crate) fn with_seek(inner: R, what: impl Into<String>) -> Self {
        let mut r = TarReader::new(inner, what);
        r.seek = Some(|inner: &mut R, n: u64| {
            let n = i64::try_from(n).map_err(io::Error::other)?;
            inner.seek(io::SeekFrom::Current(n)).map(|_| ())
        });
        r
    }
}

/// The data of the current tar entry (see [`TarReader::data`]).
pub(crate) struct EntryData<'a, R> {
    r: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.r.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.r.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        let got = self.r.inner.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated entry data",
            ));
        }
        self.r.pos += got as u64;
        self.r.remaining -= got as u64;
        Ok(got)
    }
}

fn parse_pax(mut data: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with an invalid length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("PAX record length out of bounds".into());
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without `=`")?;
        let key = String::from_utf8(rec[..eq].to_vec()).map_err(|_| "PAX key is not UTF-8")?;
        out.push((key, rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn put_octal(field: &mut [u8], v: u64) -> bool {
    // `width - 1` digits then a NUL, as POSIX writers do.
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // The length counts itself: find the fixed point.
    let body = key.len() + value.len() + 3; // ' ' '=' '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

fn ustar_block(name: &[u8], link: &[u8], typeflag: u8, h: &Header, size: u64) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    put_octal(&mut b[100..108], u64::from(h.mode));
    put_octal(&mut b[108..116], h.uid.min(0o7777777));
    put_octal(&mut b[116..124], h.gid.min(0o7777777));
    put_octal(&mut b[124..136], size.min(0o77777777777));
    put_octal(&mut b[136..148], h.mtime.min(0o77777777777));
    b[156] = typeflag;
    let l = link.len().min(100);
    b[157..157 + l].copy_from_slice(&link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    let u = h.uname.len().min(31);
    b[265..265 + u].copy_from_slice(&h.uname[..u]);
    let g = h.gname.len().min(31);
    b[297..297 + g].copy_from_slice(&h.gname[..g]);
    if matches!(h.kind, Kind::CharDevice | Kind::BlockDevice) {
        put_octal(&mut b[329..337], u64::from(h.devmajor));
        put_octal(&mut b[337..345], u64::from(h.devminor));
    }
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// Writes a header for `h` with data size `size`: plain ustar when everything fits, else a PAX header first
/// (long names, large sizes or ids, extra records). Deterministic: equal inputs give equal bytes.
pub(crate) fn write_header(out: &mut (impl Write + ?Sized), h: &Header, size: u64) -> io::Result<()> {
    let typeflag = match h.kind {
        Kind::File => b'0',
        Kind::HardLink => b'1',
        Kind::Symlink => b'2',
        Kind::CharDevice => b'3',
        Kind::BlockDevice => b'4',
        Kind::Directory => b'5',
        Kind::Fifo => b'6',
    };
    let mut records = Vec::new();
    if h.name.len() > 100 {
        records.extend(pax_record("path", &h.name));
    }
    if h.link.len() > 100 {
        records.extend(pax_record("linkpath", &h.link));
    }
    if size > 0o77777777777 {
        records.extend(pax_record("size", size.to_string().as_bytes()));
    }
    if h.uid > 0o7777777 {
        records.extend(pax_record("uid", h.uid.to_string().as_bytes()));
    }
    if h.gid > 0o7777777 {
        records.extend(pax_record("gid", h.gid.to_string().as_bytes()));
    }
    if h.mtime > 0o77777777777 {
        records.extend(pax_record("mtime", h.mtime.to_string().as_bytes()));
    }
    if h.uname.len() > 31 {
        records.extend(pax_record("uname", &h.uname));
    }
    if h.gname.len() > 31 {
        records.extend(pax_record("gname", &h.gname));
    }
    for (k, v) in &h.pax_extra {
        records.extend(pax_record(k, v));
    }
    if !records.is_empty() {
        let pax_header = Header {
            name: b"././@PaxHeader".to_vec(),
            link: Vec::new(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            stored_size: records.len() as u64,
            mtime: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            pax_extra: Vec::new(),
            raw: Vec::new(),
        };
        out.write_all(&ustar_block(
            &pax_header.name,
            b"",
            b'x',
            &pax_header,
            records.len() as u64,
        ))?;
        out.write_all(&records)?;
        write_padding(out, records.len() as u64)?;
    }
    out.write_all(&ustar_block(&h.name, &h.link, typeflag, h, size))
}

/// Writes the zero padding that follows `size` bytes of entry data.
pub(crate) fn write_padding(out: &mut (impl Write + ?Sized), size: u64) -> io::Result<()> {
    let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    out.write_all(&[0u8; BLOCK][..usize::try_from(pad).unwrap_or(0)])
}

/// Writes the end-of-archive marker (two zero blocks).
pub(crate) fn write_end(out: &mut (impl Write + ?Sized)) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK])
}

impl Header {
    /// A header for an entry Arca creates itself (root-owned, fixed time): deterministic.
    pub(crate) fn new(name: &str, kind: Kind, mode: u32) -> Header {
        Header {
            name: name.as_bytes().to_vec(),
            link: Vec::new(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            stored_size: 0,
            mtime: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            pax_extra: Vec::new(),
            raw: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(Header, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, data) in entries {
            write_header(&mut out, h, data.len() as u64).unwrap();
            out.extend_from_slice(data);
            write_padding(&mut out, data.len() as u64).unwrap();
        }
        write_end(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_back_what_it_writes_including_long_names_and_xattrs() {
        let long = format!("usr/{}/file", "d".repeat(300));
        let mut h = Header::new(&long, Kind::File, 0o755);
        h.pax_extra.push(("SCHILY.xattr.user.x".into(), b"v".to_vec()));
        let mut l = Header::new("link", Kind::Symlink, 0o777);
        l.link = "t".repeat(200).into_bytes();
        let bytes = build(&[(h, b"hello"), (l, b"")]);
        let mut r = TarReader::new(&bytes[..], "test");
        let a = r.next_header().unwrap().unwrap();
        assert_eq!(a.name, long.as_bytes());
        assert_eq!(a.mode, 0o755);
        assert_eq!(
            a.pax_extra,
            vec![("SCHILY.xattr.user.x".to_string(), b"v".to_vec())]
        );
        let mut data = Vec::new();
        r.copy_data(&mut data).unwrap();
        assert_eq!(data, b"hello");
        let b = r.next_header().unwrap().unwrap();
        assert_eq!(b.kind, Kind::Symlink);
        assert_eq!(b.link.len(), 200);
        assert!(r.next_header().unwrap().is_none());
    }

    #[test]
    fn the_system_tar_reads_our_headers() {
        let Some(tar) = arca_testkit::require_tool("tar") else {
            return;
        };
        let long = format!("a/{}/f", "x".repeat(150));
        let bytes = build(&[
            (Header::new("a/", Kind::Directory, 0o755), b""),
            (Header::new(&long, Kind::File, 0o600), b"data"),
        ]);
        let out = std::process::Command::new(tar)
            .arg("-tv")
            .arg("-f")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(&bytes)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains(&long), "{listing}");
        assert!(listing.contains("-rw-------"), "{listing}");
    }

    #[test]
    fn refuses_an_oversized_gnu_long_name() {
        let mut h = Header::new("././@LongLink", Kind::File, 0o644);
        h.size = MAX_EXTENSION + 1;
        let mut bytes = ustar_block(&h.name, b"", b'L', &h, MAX_EXTENSION + 1).to_vec();
        bytes.extend(vec![b'a'; 4096]);
        let err = TarReader::new(&bytes[..], "hostile").next_header().unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn refuses_a_bad_checksum_and_truncated_data() {
        let mut bytes = build(&[(Header::new("f", Kind::File, 0o644), b"0123456789")]);
        let mut flipped = bytes.clone();
        flipped[0] = b'g';
        assert!(TarReader::new(&flipped[..], "x")
            .next_header()
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        bytes.truncate(BLOCK + 5);
        let mut r = TarReader::new(&bytes[..], "x");
        r.next_header().unwrap().unwrap();
        assert!(r
            .copy_data(&mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn parses_gnu_base256_numbers() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 0x10;
        f[10] = 0x01;
        assert_eq!(parse_octal_or_binary(&f), Some(0x110));
        assert_eq!(parse_octal_or_binary(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal_or_binary(b"   644 \0"), Some(0o644));
        assert_eq!(parse_octal_or_binary(b"0000694\0"), None);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [1usize, 5, 90, 95, 96, 97, 990, 995, 1000] {
            let rec = pax_record("path", &vec![b'a'; n]);
            let (len, _) = std::str::from_utf8(&rec).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), rec.len());
        }
    }
}
