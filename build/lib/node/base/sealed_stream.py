"""A byte stream sealed under a passphrase: what ``refnode backup --passphrase`` writes.

An archive can be larger than memory, so it is sealed in chunks, each with AES-256-GCM
(``cryptography``), as age and Tink do (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár):

- the key comes from the passphrase with scrypt (N=2**15, r=8, p=1, a random 16-byte salt);
- the file starts with :data:`MAGIC` and one line of JSON naming the parameters (the
  *header*), which every chunk authenticates as associated data;
- then chunks of :data:`CHUNK_BYTES` of plaintext (the last one shorter, perhaps empty),
  each as a 4-byte big-endian length and the ciphertext with its 16-byte tag; the nonce is
  a random 7-byte prefix, the chunk's number (4 bytes) and a byte that is 1 on the last
  chunk only.

So a wrong passphrase, a changed byte, chunks reordered, dropped or repeated, a stream cut
short or with bytes after its last chunk: each fails to open (:class:`SealedStreamError`).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"refnode-sealed-stream/1\n"
CHUNK_BYTES = 1 << 20
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_LENGTH = struct.Struct("!I")
_TAG_BYTES = 16
#: A header line longer than this is not ours.
_MAX_HEADER = 1024


class SealedStreamError(Exception):
    """The stream cannot be opened: wrong passphrase, or damaged, cut short, or not one."""


def is_sealed(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a sealed stream."""
    return head.startswith(MAGIC)


def _key(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + number.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SealingWriter:
    """A write-only file object: what is written to it goes to ``sink`` sealed. Call
    :meth:`close` to write the last chunk (the sink itself stays open)."""

    def __init__(self, sink: BinaryIO, passphrase: bytes) -> None:
        if not passphrase:
            raise ValueError("the passphrase is empty")
        salt, self._prefix = os.urandom(16), os.urandom(7)
        params = {"cipher": "AES-256-GCM", "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                  "salt": base64.b64encode(salt).decode(), "nonce_prefix": base64.b64encode(self._prefix).decode(),
                  "chunk": CHUNK_BYTES}
        self._header = MAGIC + json.dumps(params, sort_keys=True).encode() + b"\n"
        self._aead = AESGCM(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
        self._sink = sink
        self._buffer = bytearray()
        self._number = 0
        self._closed = False
        sink.write(self._header)

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed sealed stream")
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:  # the last chunk is sealed by close()
            self._emit(bytes(self._buffer[:CHUNK_BYTES]), last=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._number, last), chunk, self._header)
        self._sink.write(_LENGTH.pack(len(sealed)) + sealed)
        self._number += 1

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def flush(self) -> None:
        self._sink.flush()


class OpeningReader:
    """A read-only file object over a sealed stream: ``read`` gives the plaintext, chunk by
    chunk as it is verified, and raises :class:`SealedStreamError` at the first chunk that
    does not open, or when the stream ends before its last chunk."""

    def __init__(self, source: BinaryIO, passphrase: bytes) -> None:
        self._source = source
        magic = source.read(len(MAGIC))
        line = source.readline(_MAX_HEADER)
        if magic != MAGIC or not line.endswith(b"\n"):
            raise SealedStreamError("not a sealed stream")
        try:
            params = json.loads(line)
            salt = base64.b64decode(params["salt"], validate=True)
            self._prefix = base64.b64decode(params["nonce_prefix"], validate=True)
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            if params["cipher"] != "AES-256-GCM" or params["kdf"] != "scrypt" or len(self._prefix) != 7:
                raise ValueError("unknown cipher or key derivation")
            if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
                raise ValueError("scrypt parameters out of range")
            self._chunk = int(params["chunk"])
            if not 1 <= self._chunk <= 64 << 20:
                raise ValueError("chunk size out of range")
        except (ValueError, KeyError, TypeError) as exc:
            raise SealedStreamError(f"the sealed stream's header is damaged: {exc}") from None
        self._header = magic + line
        self._aead = AESGCM(_key(passphrase, salt, n, r, p))
        self._number = 0
        self._plain = bytearray()
        self._ended = False

    def _next_chunk(self) -> None:
        size_bytes = self._source.read(_LENGTH.size)
        if len(size_bytes) < _LENGTH.size:
            raise SealedStreamError("the sealed stream is cut short (its last chunk is missing)")
        (size,) = _LENGTH.unpack(size_bytes)
        if not _TAG_BYTES <= size <= self._chunk + _TAG_BYTES:
            raise SealedStreamError("the sealed stream is damaged (a chunk has an impossible length)")
        sealed = self._source.read(size)
        if len(sealed) < size:
            raise SealedStreamError("the sealed stream is cut short")
        last = size < self._chunk + _TAG_BYTES or self._peek_end()
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, self._number, last), sealed, self._header)
        except InvalidTag:
            if self._number == 0:
                raise SealedStreamError("wrong passphrase, or the archive is damaged") from None
            raise SealedStreamError(f"the sealed stream is damaged (chunk {self._number})") from None
        self._number += 1
        self._plain += plain
        if last:
            if self._source.read(1):
                raise SealedStreamError("the sealed stream has data after its last chunk")
            self._ended = True

    def _peek_end(self) -> bool:
        """A full-size chunk is the last one only if nothing follows it."""
        peek = getattr(self._source, "peek", None)
        if peek is not None:
            return not peek(1)
        position = self._source.tell()
        at_end = not self._source.read(1)
        self._source.seek(position)
        return at_end

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._plain) < size):
            self._next_chunk()
        if size < 0:
            size = len(self._plain)
        out = bytes(self._plain[:size])
        del self._plain[:size]
        return out
