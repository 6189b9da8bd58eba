//! Fixed-layout readers and writers for the architectural structures.
//!
//! Every structure is parsed from a slice whose length was checked against its `SIZE` first; the reader then
//! walks the fields in order, so a field read at the wrong offset shows up as a wrong final position (checked in
//! each structure's tests), never as a pointer cast.

use crate::error::Error;

/// Walks a byte slice of a known, already checked length, field by field.
pub(crate) struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `what` (a structure name used in errors) from `buf`, which must be exactly `size` bytes.
    pub(crate) fn new(what: &'static str, buf: &'a [u8], size: usize) -> Result<Self, Error> {
        if buf.len() != size {
            return Err(Error::Length {
                what,
                expected: size,
                found: buf.len(),
            });
        }
        Ok(Reader { what, buf, pos: 0 })
    }

    /// The offset of the next field.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Reads the next `N` bytes.
    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        // The length was checked in `new`, and the structures read exactly their SIZE.
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Skips `N` reserved bytes, which must all be zero.
    pub(crate) fn reserved<const N: usize>(&mut self) -> Result<(), Error> {
        let offset = self.pos;
        let bytes: [u8; N] = self.array();
        match bytes.iter().position(|b| *b != 0) {
            None => Ok(()),
            Some(i) => Err(Error::ReservedNotZero {
                what: self.what,
                offset: offset + i,
            }),
        }
    }

    /// Ends reading; the whole buffer must have been consumed.
    pub(crate) fn finish(self) {
        debug_assert_eq!(self.pos, self.buf.len(), "{}: layout does not add up", self.what);
    }
}

/// Writes fields in order into a fixed-size array.
pub(crate) struct Writer<const N: usize> {
    buf: [u8; N],
    pos: usize,
}

impl<const N: usize> Writer<N> {
    pub(crate) fn new() -> Self {
        Writer {
            buf: [0u8; N],
            pos: 0,
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn zeros(&mut self, n: usize) -> &mut Self {
        self.pos += n;
        self
    }

    pub(crate) fn finish(&mut self) -> [u8; N] {
        debug_assert_eq!(self.pos, N, "layout does not add up");
        self.buf
    }
}
