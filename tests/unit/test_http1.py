"""The scrape path's HTTP/1.1 answer reader, fed as a socket delivers: whole, or byte by byte."""

from __future__ import annotations

import pytest

from console.http1 import MAX_HEAD_BYTES, ProtocolError, ResponseReader

LIMIT = 1024


def read(answer: bytes, *, step: int | None = None, ended: bool = False) -> ResponseReader:
    """The reader once `answer` is fed in pieces of `step` bytes (all at once by default);
    AssertionError if it is complete before the last byte or not after it."""
    reader = ResponseReader(LIMIT)
    step = step or len(answer)
    pieces = [answer[at : at + step] for at in range(0, len(answer), step)]
    for index, piece in enumerate(pieces):
        done = reader.feed(piece)
        assert done == (index == len(pieces) - 1 and not ended), (index, piece)
    if ended:
        assert reader.end()
    return reader


LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("answer", [LENGTH, CHUNKED], ids=["content-length", "chunked"])
def test_bodies_whatever_the_reads(answer: bytes, step: int | None) -> None:
    reader = read(answer, step=step)
    assert reader.head is not None
    assert (reader.head.status, reader.head.reason, reader.body) == (200, "OK", b"hello world")
    assert reader.head.keep_alive
    assert reader.head.headers[0] in (
        (b"content-type", b"text/plain"),
        (b"transfer-encoding", b"chunked"),
    )


def test_interim_answers_are_skipped_and_empty_ones_have_no_body() -> None:
    reader = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert reader.head is not None and (reader.head.status, reader.body) == (204, b"")


def test_a_body_to_the_close_ends_the_connection() -> None:
    reader = read(b"HTTP/1.0 200 OK\r\n\r\nall of it", ended=True)
    assert reader.body == b"all of it"
    assert reader.head is not None and not reader.head.keep_alive
    closing = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert closing.head is not None and not closing.head.keep_alive


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"\x00\xff garbage \r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad content-length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", "body larger than 1024 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer-encoding 'gzip'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "chunk not"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "more bytes than the answer's"),
    ],
)
def test_what_is_not_an_answer_says_why(answer: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        ResponseReader(LIMIT).feed(answer)


def test_limits_on_heads_and_on_bodies_without_a_length() -> None:
    with pytest.raises(ProtocolError, match="answer head longer"):
        ResponseReader(LIMIT).feed(b"HTTP/1.1 200 OK\r\nX: " + b"x" * MAX_HEAD_BYTES)
    endless = ResponseReader(LIMIT)
    endless.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    with pytest.raises(ProtocolError, match="body larger"):
        endless.feed(b"x" * (LIMIT + 1))
    chunky = ResponseReader(LIMIT)
    chunky.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ProtocolError, match="body larger"):
        chunky.feed(b"%x\r\n%s\r\n" % (LIMIT + 1, b"x" * (LIMIT + 1)))


def test_a_close_before_the_answer_is_whole_is_an_error() -> None:
    for cut in (b"", b"HTTP/1.1 200 OK\r\nContent-Le", LENGTH[:-3], CHUNKED[:-10]):
        reader = ResponseReader(LIMIT)
        reader.feed(cut)
        with pytest.raises(ProtocolError, match="closed the connection mid-answer"):
            reader.end()
