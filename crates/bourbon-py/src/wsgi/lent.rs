//! Large response chunks lent by Python instead of copied.
//!
//! A response chunk must be `bytes` (PEP 3333), and `bytes` are immutable: while we hold a
//! reference, the object's buffer neither changes nor moves. A large chunk is therefore
//! written straight from that buffer, with the object kept alive until the bytes are out,
//! instead of being copied into a buffer of ours first (a 1 MiB body: one memcpy of 1 MiB
//! less per response). Small chunks are still copied: the copy costs less than the
//! bookkeeping. The reference may be dropped on the connection thread without the GIL; PyO3
//! then defers the decrement to the next time the GIL is taken.

// Reading a `bytes` buffer without the GIL: see the SAFETY notes.
#![allow(unsafe_code)]

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Chunks at least this large are lent rather than copied.
pub(crate) const LEND_MIN: usize = 64 * 1024;

/// A `bytes` object's contents, kept alive by a reference to the object.
struct Lent {
    _obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Py<PyBytes>` is Send; the pointer is to the immutable buffer of that `bytes`
// object, which stays valid and unchanged while `_obj` holds its reference, so reading it from
// any thread, without the GIL, is sound.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` and `len` describe the buffer of `_obj`, alive and immutable for as
        // long as `self` is (see the Send note).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The contents of `b` as `Bytes`: lent when large, copied otherwise.
pub(crate) fn bytes_of(b: &Bound<'_, PyBytes>) -> Bytes {
    let data = b.as_bytes();
    if data.len() < LEND_MIN {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(Lent {
        ptr: data.as_ptr(),
        len: data.len(),
        _obj: b.clone().unbind(),
    })
}
