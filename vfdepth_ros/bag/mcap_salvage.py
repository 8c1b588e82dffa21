"""Salvage an MCAP stream that was never closed or is damaged (`vfdepth bag repair`, `--allow-damaged`).

A recorder that is killed hard (SIGKILL, power loss) leaves ``.<name>.mcap.partial/`` behind: an MCAP
stream without summary or footer, which readers refuse. The recorder flushes complete chunks every
``--flush-interval`` s, so everything up to the last flush is on disk. This reads the stream record by
record (MCAP spec: magic, then ``opcode u8, length u64, body``; chunks hold schema/channel/message
records, uncompressed, lz4 or zstd), stops cleanly at the truncated tail, and keeps the records of a
chunk damaged inside (flipped bytes, garbage) up to the damage and goes on with the next chunk.
``bag.common.repair`` writes what it found into a new, valid bag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from vfdepth_ros.errors import BagError

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_FOOTER, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F


class _Truncated(Exception):
    pass


class _Buf:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated()
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8")

    def string_map(self) -> Dict[str, str]:
        end = self.u32()
        end += self.pos
        out = {}
        while self.pos < end:
            k = self.string()
            out[k] = self.string()
        return out


@dataclass
class Salvage:
    schemas: Dict[int, Tuple[str, str, str]] = field(default_factory=dict)  # id -> (name, encoding, text)
    channels: Dict[int, Tuple[int, str, Dict[str, str]]] = field(default_factory=dict)  # id -> (schema, topic, meta)
    messages: List[Tuple[int, int, bytes]] = field(default_factory=list)  # (channel id, log time, data)
    complete: bool = False  # the file had its footer (nothing was cut off)
    lost_bytes: int = 0
    damaged_chunks: int = 0  # chunks whose records stopped parsing part-way (their earlier records are kept)


def _records(buf: _Buf, end: int) -> Iterator[Tuple[int, _Buf]]:
    while buf.pos < end:
        op = buf.take(1)[0]
        n = buf.u64()
        yield op, _Buf(buf.take(n))


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    if compression == "zstd":
        try:
            import zstandard

            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        except ImportError:
            from compression import zstd  # Python >= 3.14

            return zstd.decompress(data)
    raise BagError(f"chunk compression {compression!r} is not supported")


def _handle(op: int, body: _Buf, out: Salvage) -> None:
    if op == OP_SCHEMA:
        sid = body.u16()
        name, enc = body.string(), body.string()
        text = body.take(body.u32()).decode("utf-8", "replace")
        out.schemas[sid] = (name, enc, text)
    elif op == OP_CHANNEL:
        cid, sid = body.u16(), body.u16()
        topic, _enc = body.string(), body.string()
        out.channels[cid] = (sid, topic, body.string_map())
    elif op == OP_MESSAGE:
        cid, _seq, log_time, _pub = body.u16(), body.u32(), body.u64(), body.u64()
        out.messages.append((cid, log_time, body.data[body.pos:]))
    elif op == OP_CHUNK:
        _start, _end, size, _crc = body.u64(), body.u64(), body.u64(), body.u32()
        compression = body.string()
        n = body.u64()
        records = body.data[body.pos:body.pos + n]  # shorter when the file ends inside this chunk
        body.pos += n
        try:
            data = _decompress(records, compression, size)
            inner = _Buf(data)
            for iop, ibody in _records(inner, len(data)):
                _handle(iop, ibody, out)
        except BagError:
            raise
        except Exception:  # a damaged record (bad length, garbage) or undecodable compressed data
            out.damaged_chunks += 1


def salvage(path: str | Path) -> Salvage:
    """Every schema, channel and message of the MCAP stream at `path` up to where it was cut off."""
    p = Path(path)
    data = p.read_bytes()
    if not data.startswith(MAGIC):
        raise BagError(f"{p}: not an MCAP file (no MCAP magic at the start)")
    out = Salvage()
    buf = _Buf(data, len(MAGIC))
    while buf.pos < len(data):
        start = buf.pos
        staged = Salvage(out.schemas.copy(), out.channels.copy())
        try:
            op = buf.take(1)[0]
            n = buf.u64()
            if op == OP_CHUNK and buf.pos + n > len(data):  # the file ends inside a chunk: keep its whole records
                _handle(op, _Buf(data[buf.pos:]), staged)
                out.schemas, out.channels = staged.schemas, staged.channels
                out.messages.extend(staged.messages)
                raise _Truncated()
            body = _Buf(buf.take(n))
            if op in (OP_FOOTER, OP_DATA_END):
                out.complete = op == OP_FOOTER or out.complete
                if op == OP_FOOTER:
                    break
                continue
            _handle(op, body, staged)  # a record counts only when it parsed whole
        except _Truncated:
            out.lost_bytes = len(data) - start
            break
        out.schemas, out.channels = staged.schemas, staged.channels
        out.messages.extend(staged.messages)
    return out


def find_partial(path: str | Path) -> Path:
    """The MCAP file to salvage: `path` itself, the file inside a ``.partial`` directory, or the
    ``.<name>.partial`` directory the recorder leaves next to ``<name>``."""
    p = Path(path)
    if p.is_file():
        return p
    cands = [p] if p.is_dir() else []
    cands.append(p.parent / f".{p.name}.partial")
    for d in cands:
        if d.is_dir():
            files = sorted(d.glob("*.mcap"))
            if files:
                return files[0]
    raise BagError(f"{p}: no MCAP file to repair (give the .mcap file, or the bag name whose "
                   f".{p.name}.partial folder a killed recorder left)")
