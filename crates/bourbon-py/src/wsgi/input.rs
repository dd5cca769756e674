//! `wsgi.input`: the request body as a Python file-like object (PEP 3333 "Input and Error
//! Streams").
//!
//! It owns reading: `read()`, `read(n)`, `readline()`, `readline(n)`, `readlines(hint)` and
//! iteration over chunks that Rust fetched. A small body arrives complete; a large one streams
//! through a bounded channel, and every wait for the network happens with the GIL released. The
//! first read of a streamed body is what tells the connection to answer `100 Continue`. Past
//! the end every read returns `b""`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::sync::mpsc;

use super::message::{BodyError, BodySource, Demand};

pyo3::create_exception!(
    _bourbon,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The client went away (or broke the framing) before the request body was complete."
);

struct Stream {
    demand: Arc<Demand>,
    chunks: mpsc::Receiver<Result<Bytes, BodyError>>,
}

/// The request body stream.
#[pyclass(module = "bourbon._bourbon", name = "InputStream")]
pub(crate) struct InputStream {
    /// The unread part of the current chunk.
    buf: Bytes,
    /// Chunks read ahead of the application.
    queued: VecDeque<Bytes>,
    stream: Option<Stream>,
}

impl InputStream {
    pub(crate) fn new(source: BodySource) -> Self {
        match source {
            BodySource::Buffered(buf) => InputStream {
                buf,
                queued: VecDeque::new(),
                stream: None,
            },
            BodySource::Streaming {
                first,
                demand,
                chunks,
            } => InputStream {
                buf: Bytes::new(),
                queued: first.into(),
                stream: Some(Stream { demand, chunks }),
            },
        }
    }

    /// Make `buf` non-empty; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        while self.buf.is_empty() {
            if let Some(next) = self.queued.pop_front() {
                self.buf = next;
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(false);
            };
            stream.demand.ask();
            let chunks = &mut stream.chunks;
            // The wait for the client happens without the GIL, so other Python threads run.
            let item = py.detach(|| chunks.blocking_recv());
            match item {
                None => {
                    self.stream = None;
                    return Ok(false);
                }
                Some(Ok(b)) => self.buf = b,
                Some(Err(BodyError::Rejected(413))) => {
                    self.stream = None;
                    return Err(ClientDisconnected::new_err(
                        "request body larger than --limit-request-body",
                    ));
                }
                Some(Err(_)) => {
                    self.stream = None;
                    return Err(ClientDisconnected::new_err(
                        "client disconnected before the request body was complete",
                    ));
                }
            }
        }
        Ok(true)
    }

    fn read_all(&mut self, py: Python<'_>) -> PyResult<Bytes> {
        if self.queued.is_empty() && self.stream.is_none() {
            return Ok(std::mem::take(&mut self.buf));
        }
        let mut out = BytesMut::new();
        while self.fill(py)? {
            out.extend_from_slice(&self.buf);
            self.buf.clear();
        }
        Ok(out.freeze())
    }

    fn read_n(&mut self, py: Python<'_>, n: usize) -> PyResult<Bytes> {
        if !self.fill(py)? || n == 0 {
            return Ok(Bytes::new());
        }
        if self.buf.len() >= n {
            return Ok(self.buf.split_to(n));
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n && self.fill(py)? {
            let take = (n - out.len()).min(self.buf.len());
            out.extend_from_slice(&self.buf[..take]);
            self.buf.advance(take);
        }
        Ok(out.freeze())
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Bytes> {
        let mut out = BytesMut::new();
        while self.fill(py)? {
            let room = limit.map_or(usize::MAX, |l| l - out.len());
            let window = &self.buf[..self.buf.len().min(room)];
            if let Some(pos) = memchr_newline(window) {
                let line = self.buf.split_to(pos + 1);
                if out.is_empty() {
                    return Ok(line);
                }
                out.extend_from_slice(&line);
                return Ok(out.freeze());
            }
            let take = window.len();
            out.extend_from_slice(&self.buf[..take]);
            self.buf.advance(take);
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out.freeze())
    }
}

fn memchr_newline(hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == b'\n')
}

fn size_arg(size: Option<i64>) -> Option<usize> {
    match size {
        Some(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => None,
    }
}

#[pymethods]
impl InputStream {
    /// read(size=-1): up to `size` bytes, or everything that is left.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let data = match size_arg(size) {
            Some(n) => self.read_n(py, n)?,
            None => self.read_all(py)?,
        };
        Ok(PyBytes::new(py, &data))
    }

    /// readline(size=-1): one line including its b"\n", at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, size_arg(size))?;
        Ok(PyBytes::new(py, &line))
    }

    /// readlines(hint=-1): lines until their total size reaches `hint`.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0usize;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        if line.is_empty() {
            Ok(None)
        } else {
            Ok(Some(PyBytes::new(py, &line)))
        }
    }
}
