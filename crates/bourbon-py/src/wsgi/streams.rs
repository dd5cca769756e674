//! `wsgi.errors` and `wsgi.file_wrapper` (PEP 3333 "Input and Error Streams" and "Optional
//! Platform-Specific File Handling").
//!
//! `ErrorsStream` writes what the application logs to bourbon's error log. `FileWrapper` is the
//! object an application returns to send a file: it iterates in blocks like any iterable (so it
//! works everywhere), and the response loop recognises it and lets Rust send the file from its
//! descriptor without Python in the loop.

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The `wsgi.errors` stream.
#[pyclass(module = "bourbon._bourbon", name = "ErrorsStream")]
pub(crate) struct ErrorsStream;

#[pymethods]
impl ErrorsStream {
    fn write(&self, s: &Bound<'_, PyString>) -> PyResult<usize> {
        let text = s.to_cow()?;
        bourbon_server::log::write_stream(&text);
        Ok(text.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line = line?;
            let s = line.cast::<PyString>()?;
            bourbon_server::log::write_stream(&s.to_cow()?);
        }
        Ok(())
    }

    /// With `--log-format json`, writes an unfinished line as a record of its own.
    fn flush(&self) {
        bourbon_server::log::flush_stream();
    }
}

/// The `wsgi.file_wrapper` callable and the iterable it returns.
#[pyclass(module = "bourbon._bourbon", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size=8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        FileWrapper {
            filelike,
            block_size: block_size.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.block_size,))?;
        if data.len()? == 0 {
            Ok(None)
        } else {
            Ok(Some(data))
        }
    }

    /// Closing the wrapper closes the file (PEP 3333: the wrapper's close calls the file's).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr(pyo3::intern!(py, "close"))? {
            f.call_method0(pyo3::intern!(py, "close"))?;
        }
        Ok(())
    }
}
