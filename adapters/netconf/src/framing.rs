//! RFC 6242 message framing: base:1.0 end-of-message (`]]>]]>`) and
//! base:1.1 chunked framing (`\n#<len>\n<data>...\n##\n`).
//!
//! [`FrameReader::read_message`] is cancel-safe: bytes read so far stay in
//! the reader's buffer, so a session can `select!` on it.

use tokio::io::{AsyncRead, AsyncReadExt};

const EOM: &[u8] = b"]]>]]>";
/// The largest chunk RFC 6242 allows.
const MAX_CHUNK: u64 = 4_294_967_295;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// base:1.0, `]]>]]>` after each message.
    EndOfMessage,
    /// base:1.1 chunked framing.
    Chunked,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("message larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("bad chunk header: {0}")]
    BadChunk(String),
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads framed messages from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Where to resume scanning for the end marker (base:1.0).
    scanned: usize,
    /// Where the next chunk header starts in `buf` (base:1.1).
    chunk_pos: usize,
    /// The chunks of the current message so far.
    chunk_msg: Vec<u8>,
    pub framing: Framing,
    pub max_message: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_message: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(8192),
            scanned: 0,
            chunk_pos: 0,
            chunk_msg: Vec::new(),
            framing: Framing::EndOfMessage,
            max_message,
        }
    }

    /// The next complete message; `Ok(None)` at a clean end of stream.
    pub async fn read_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(msg) = self.try_take()? {
                return Ok(Some(msg));
            }
            self.buf.reserve(8192);
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return if self.chunk_msg.is_empty() && self.buf.iter().all(u8::is_ascii_whitespace)
                {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    /// Takes one message out of the buffer if it is complete.
    fn try_take(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        match self.framing {
            Framing::EndOfMessage => {
                let from = self.scanned.saturating_sub(EOM.len() - 1);
                if let Some(pos) = find(&self.buf[from..], EOM) {
                    let end = from + pos;
                    let msg = self.buf[..end].to_vec();
                    self.buf.drain(..end + EOM.len());
                    self.scanned = 0;
                    return Ok(Some(msg));
                }
                self.scanned = self.buf.len();
                if self.buf.len() > self.max_message + EOM.len() {
                    return Err(FrameError::TooLarge {
                        limit: self.max_message,
                    });
                }
                Ok(None)
            }
            Framing::Chunked => self.try_take_chunked(),
        }
    }

    /// Parses chunks from where the last call stopped (`chunk_pos`), so a
    /// message of many small chunks costs linear time, not quadratic.
    fn try_take_chunked(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let b = &self.buf;
        let mut pos = self.chunk_pos;
        loop {
            // Each chunk and the end marker start with "\n#".
            // Lenience that libnetconf2 shows too, and that cannot confuse
            // where a message ends: a stray end-of-message marker between
            // messages (a client still framing 1.0 after the hello), and CR
            // before the LFs of chunk headers (CRLF line ends).
            if self.chunk_msg.is_empty() {
                let ws = b[pos..]
                    .iter()
                    .take_while(|c| matches!(c, b'\r' | b'\n' | b' ' | b'\t'))
                    .count();
                let rest = &b[pos + ws..];
                if rest.starts_with(EOM) {
                    let skip = pos + ws + EOM.len();
                    self.buf.drain(..skip);
                    self.chunk_pos = 0;
                    return self.try_take_chunked();
                }
                if rest.len() < EOM.len() && EOM.starts_with(rest) && !rest.is_empty() {
                    self.chunk_pos = pos;
                    return Ok(None);
                }
            }
            if b.len() > pos && b[pos] == b'\r' {
                pos += 1;
            }
            if b.len() < pos + 2 {
                self.chunk_pos = pos;
                return Ok(None);
            }
            if b[pos] != b'\n' || b[pos + 1] != b'#' {
                return Err(FrameError::BadChunk(format!(
                    "expected LF '#', got {:?}",
                    String::from_utf8_lossy(&b[pos..(pos + 2).min(b.len())])
                )));
            }
            let mut p = pos + 2;
            if b.len() <= p {
                self.chunk_pos = pos;
                return Ok(None);
            }
            if b[p] == b'#' {
                if b.len() <= p + 1 {
                    self.chunk_pos = pos;
                    return Ok(None);
                }
                let crlf = b[p + 1] == b'\r';
                if crlf && b.len() <= p + 2 {
                    self.chunk_pos = pos;
                    return Ok(None);
                }
                if crlf {
                    p += 1;
                }
                if b[p + 1] != b'\n' {
                    return Err(FrameError::BadChunk(
                        "end-of-chunks not followed by LF".into(),
                    ));
                }
                if self.chunk_msg.is_empty() {
                    return Err(FrameError::BadChunk(
                        "end-of-chunks before any chunk".into(),
                    ));
                }
                self.buf.drain(..p + 2);
                self.chunk_pos = 0;
                return Ok(Some(std::mem::take(&mut self.chunk_msg)));
            }
            let start = p;
            while p < b.len() && b[p].is_ascii_digit() {
                p += 1;
                if p - start > 10 {
                    return Err(FrameError::BadChunk("chunk size too long".into()));
                }
            }
            if p == b.len() {
                self.chunk_pos = pos;
                return Ok(None);
            }
            let crlf = b[p] == b'\r' && p > start;
            if crlf && p + 1 == b.len() {
                self.chunk_pos = pos;
                return Ok(None);
            }
            let digits_end = p;
            if crlf {
                p += 1;
            }
            if b[p] != b'\n' || p == start {
                return Err(FrameError::BadChunk("chunk size is not a number".into()));
            }
            let digits = std::str::from_utf8(&b[start..digits_end]).unwrap_or("x");
            if digits.starts_with('0') {
                return Err(FrameError::BadChunk(
                    "chunk size with a leading zero".into(),
                ));
            }
            let size: u64 = digits
                .parse()
                .map_err(|_| FrameError::BadChunk("chunk size is not a number".into()))?;
            if size == 0 || size > MAX_CHUNK {
                return Err(FrameError::BadChunk(format!(
                    "chunk size {size} out of range"
                )));
            }
            if self.chunk_msg.len() as u64 + size > self.max_message as u64 {
                return Err(FrameError::TooLarge {
                    limit: self.max_message,
                });
            }
            p += 1;
            let size = size as usize;
            if b.len() < p + size {
                self.chunk_pos = pos;
                return Ok(None);
            }
            self.chunk_msg.extend_from_slice(&b[p..p + size]);
            pos = p + size;
            // Consumed chunks leave the buffer now and then, so it stays small.
            if pos > 64 * 1024 {
                self.buf.drain(..pos);
                self.chunk_pos = 0;
                return self.try_take_chunked();
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Frames one message for the wire.
pub fn encode(msg: &str, framing: Framing) -> Vec<u8> {
    match framing {
        Framing::EndOfMessage => {
            let mut v = Vec::with_capacity(msg.len() + 6);
            v.extend_from_slice(msg.as_bytes());
            v.extend_from_slice(EOM);
            v
        }
        Framing::Chunked => {
            let mut v = Vec::with_capacity(msg.len() + 32);
            v.extend_from_slice(format!("\n#{}\n", msg.len()).as_bytes());
            v.extend_from_slice(msg.as_bytes());
            v.extend_from_slice(b"\n##\n");
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], framing: Framing, max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut r = FrameReader::new(input, max);
        r.framing = framing;
        let mut out = Vec::new();
        loop {
            match r.read_message().await {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn end_of_message() {
        let got = read_all(b"<a/>]]>]]><b/>]]>]]>\n", Framing::EndOfMessage, 100).await;
        assert_eq!(got, vec![Ok(b"<a/>".to_vec()), Ok(b"<b/>".to_vec())]);
        let got = read_all(b"<a/>]]>]]><b", Framing::EndOfMessage, 100).await;
        assert!(got[1].as_ref().unwrap_err().contains("middle"));
        let big = vec![b'x'; 200];
        let got = read_all(&big, Framing::EndOfMessage, 100).await;
        assert!(got[0].as_ref().unwrap_err().contains("larger"));
    }

    #[tokio::test]
    async fn chunked() {
        let got = read_all(
            b"\n#4\n<rpc\n#3\n/>x\n##\n\n#1\ny\n##\n",
            Framing::Chunked,
            100,
        )
        .await;
        assert_eq!(got, vec![Ok(b"<rpc/>x".to_vec()), Ok(b"y".to_vec())]);
        for bad in [
            &b"\n#04\nabcd\n##\n"[..],
            b"\n#0\n\n##\n",
            b"\n#x\nab\n##\n",
            b"#4\nabcd\n##\n",
            b"\n##\n",
            b"\n#4\nabcd\n#\n",
            b"\n#99999999999\n",
        ] {
            let got = read_all(bad, Framing::Chunked, 100).await;
            assert!(
                got.last().unwrap().is_err(),
                "{:?} gave {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Many one-byte chunks: linear, and the message is reassembled.
        let mut many = Vec::new();
        for _ in 0..200_000 {
            many.extend_from_slice(b"\n#1\nx");
        }
        many.extend_from_slice(b"\n##\n");
        let got = read_all(&many, Framing::Chunked, 1 << 20).await;
        assert_eq!(got, vec![Ok(vec![b'x'; 200_000])]);
        // Accepted as libnetconf2 accepts them: CRLF in chunk headers and
        // a stray end-of-message marker between messages.
        let got = read_all(
            b"\r\n#4\r\n<rpc\r\n#2\r\n/>\r\n##\r\n]]>]]>\n#1\ny\n##\n\r\n]]>]]>",
            Framing::Chunked,
            100,
        )
        .await;
        assert_eq!(got, vec![Ok(b"<rpc/>".to_vec()), Ok(b"y".to_vec())]);
        let got = read_all(b"\n#101\n", Framing::Chunked, 100).await;
        assert!(got[0].as_ref().unwrap_err().contains("larger"));
        assert_eq!(
            encode("<a/>", Framing::Chunked),
            b"\n#4\n<a/>\n##\n".to_vec()
        );
    }
}
