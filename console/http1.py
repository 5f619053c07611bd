"""Reading one HTTP/1.1 answer from the bytes a connection delivers, for the scrape path.

What a metrics endpoint answers and no more: a status line, headers, and a body framed by
`Content-Length`, by `Transfer-Encoding: chunked` (trailers read and dropped), or by the end of
the connection; interim 1xx answers are skipped, and 204/304 have no body. It keeps the bytes
in one buffer and looks at them only when an answer may be complete, so a 50 KB page arriving
in a few reads costs a few `find`s rather than an event per read (h11, which httpx uses, is
general and several times slower here). Anything else is a `ProtocolError` with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")


class ProtocolError(Exception):
    """The bytes are not an HTTP/1.1 answer we can read (the message says why)."""


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]  # names in lower case
    keep_alive: bool  # the connection may carry another request after this answer


class ResponseReader:
    """One answer at a time: `feed` bytes until it returns True, then `head` and `body`."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.data = bytearray()
        self.head: Head | None = None
        self.body = b""
        self._start = 0  # where the body starts in `data`
        self._length: int | None = None  # Content-Length; None: chunked or to the end
        self._chunked = False
        self._parsed = 0  # chunked: how far the chunks have been read
        self._chunks: list[bytes] = []
        self._size = 0
        self._keep_alive = False

    def feed(self, data: bytes | memoryview) -> bool:
        """Take the next bytes (copied at once); True when the answer is complete."""
        self.data += data
        if self.head is None and not self._read_head():
            return False
        return self._read_body(ended=False)

    def end(self) -> bool:
        """The connection was closed; True if that completes the answer (a body that runs to
        the close), ProtocolError if it cuts one short."""
        if self.head is None or not self._read_body(ended=True):
            raise ProtocolError("server closed the connection mid-answer")
        return True

    # -- inside -------------------------------------------------------------------------------

    def _read_head(self) -> bool:
        data = self.data
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"answer head longer than {MAX_HEAD_BYTES} bytes")
                return False
            lines = bytes(data[:end]).split(b"\r\n")
            status = _STATUS_LINE.fullmatch(lines[0])
            if status is None:
                raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
            code = int(status[2])
            if 100 <= code < 200:  # interim (100 Continue): the real answer follows
                del data[: end + 4]
                continue
            headers = []
            for line in lines[1:]:
                name, colon, value = line.partition(b":")
                if not colon or not name or name != name.strip():
                    raise ProtocolError(f"bad header line: {line[:60]!r}")
                headers.append((name.lower(), value.strip()))
            self._frame(code, status[1] == b"1", headers)
            self.head = Head(code, (status[3] or b"").decode("latin-1"), headers, self._keep_alive)
            self._start = self._parsed = end + 4
            return True

    def _frame(self, code: int, http11: bool, headers: list[tuple[bytes, bytes]]) -> None:
        values = dict(headers)
        connection = values.get(b"connection", b"").lower()
        coding = values.get(b"transfer-encoding", b"").lower()
        length = values.get(b"content-length")
        if code in (204, 304):
            self._length = 0
        elif coding:
            if coding != b"chunked":
                raise ProtocolError(f"transfer-encoding {coding.decode('latin-1')!r}")
            self._chunked = True
        elif length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad content-length {length[:20]!r}")
            self._length = int(length)
            if self._length > self.max_body:
                raise ProtocolError(f"body larger than {self.max_body} bytes")
        framed = self._chunked or self._length is not None
        self._keep_alive = http11 and framed and b"close" not in connection

    def _read_body(self, *, ended: bool) -> bool:
        data = self.data
        if self._chunked:
            return self._read_chunks()
        if self._length is not None:
            end = self._start + self._length
            if len(data) < end:
                return False
            if len(data) > end:
                raise ProtocolError("more bytes than the answer's content-length")
            self.body = bytes(data[self._start : end])
            return True
        if len(data) - self._start > self.max_body:
            raise ProtocolError(f"body larger than {self.max_body} bytes")
        if not ended:
            return False
        self.body = bytes(data[self._start :])
        return True

    def _read_chunks(self) -> bool:
        data = self.data
        while True:
            line_end = data.find(b"\r\n", self._parsed)
            if line_end < 0:
                return False
            size_text = bytes(data[self._parsed : line_end]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:  # the last chunk: trailers, if any, end with an empty line
                trailers_end = data.find(b"\r\n\r\n", line_end)
                if data[line_end : line_end + 4] != b"\r\n\r\n" and trailers_end < 0:
                    return False
                self.body = b"".join(self._chunks)
                return True
            chunk_end = line_end + 2 + size
            if len(data) < chunk_end + 2:
                return False
            if data[chunk_end : chunk_end + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            self._size += size
            if self._size > self.max_body:
                raise ProtocolError(f"body larger than {self.max_body} bytes")
            self._chunks.append(bytes(data[line_end + 2 : chunk_end]))
            self._parsed = chunk_end + 2
