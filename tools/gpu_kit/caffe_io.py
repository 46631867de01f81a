"""Caffe's files without pycaffe, protobuf or the lmdb package (standard library only).

The GPU machine has none of those for this Caffe, so the checks write and read Caffe's data
themselves: LMDBs through the very liblmdb the kit carries for Caffe (ctypes), Datum
messages and caffemodel weights in protobuf's wire format (caffe.proto field numbers).
"""
from __future__ import annotations

import ctypes
import struct
from array import array
from pathlib import Path

# caffe.proto field numbers used here.
DATUM_CHANNELS, DATUM_HEIGHT, DATUM_WIDTH, DATUM_DATA, DATUM_LABEL, DATUM_FLOAT_DATA = 1, 2, 3, 4, 5, 6
NET_LAYER = 100          # NetParameter.layer (LayerParameter)
LAYER_NAME, LAYER_BLOBS = 1, 7
BLOB_DATA, BLOB_SHAPE = 5, 7
SHAPE_DIM = 1


# ---------------------------------------------------------------- protobuf wire format
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf, start: int = 0, end: int | None = None):
    """(field number, wire type, value) of a message: ints for varints, memoryview slices
    for length-delimited fields, raw 4/8-byte slices for fixed ones."""
    buf = memoryview(buf)
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {num})")
        yield num, wire, value


def _floats(wire: int, value) -> array:
    a = array("f")
    a.frombytes(bytes(value))   # packed (wire 2) or one fixed32 (wire 5): little-endian floats
    return a


def encode_datum(channels: int, height: int, width: int, label: int, data: bytes | None = None,
                 float_data: list[float] | None = None) -> bytes:
    """A serialized caffe.Datum: raw uint8 ``data`` (C x H x W) or ``float_data``."""
    out = bytearray()
    for num, v in ((DATUM_CHANNELS, channels), (DATUM_HEIGHT, height), (DATUM_WIDTH, width)):
        out += _varint(num << 3) + _varint(v)
    if data is not None:
        if len(data) != channels * height * width:
            raise ValueError(f"datum data has {len(data)} bytes, expected {channels * height * width}")
        out += _varint(DATUM_DATA << 3 | 2) + _varint(len(data)) + data
    out += _varint(DATUM_LABEL << 3) + _varint(label)
    for v in float_data or ():
        out += _varint(DATUM_FLOAT_DATA << 3 | 5) + struct.pack("<f", v)
    return bytes(out)


def decode_datum(buf) -> dict:
    """channels, height, width, label, data (bytes) and float_data (array('f')) of a Datum."""
    d = {"channels": 0, "height": 0, "width": 0, "label": 0, "data": b"", "float_data": array("f")}
    for num, wire, value in fields(buf):
        if num == DATUM_CHANNELS:
            d["channels"] = value
        elif num == DATUM_HEIGHT:
            d["height"] = value
        elif num == DATUM_WIDTH:
            d["width"] = value
        elif num == DATUM_DATA:
            d["data"] = bytes(value)
        elif num == DATUM_LABEL:
            d["label"] = value
        elif num == DATUM_FLOAT_DATA:
            d["float_data"].extend(_floats(wire, value))
    return d


def caffemodel_blobs(path: Path, layers: list[str] | None = None) -> dict[str, list[array]]:
    """layer name -> its blobs' values (weights, biases) from a binary caffemodel; only the
    named layers when ``layers`` is given."""
    buf = memoryview(Path(path).read_bytes())
    want = set(layers) if layers else None
    out: dict[str, list[array]] = {}
    for num, _, layer in fields(buf):
        if num != NET_LAYER:
            continue
        name, blobs = None, []
        for lnum, _, lval in fields(layer):
            if lnum == LAYER_NAME:
                name = bytes(lval).decode()
            elif lnum == LAYER_BLOBS:
                blobs.append(lval)
        if not blobs or (want is not None and name not in want):
            continue
        values = []
        for blob in blobs:
            data = array("f")
            for bnum, bwire, bval in fields(blob):
                if bnum == BLOB_DATA:
                    data.extend(_floats(bwire, bval))
            values.append(data)
        out[name] = values
    return out


# ---------------------------------------------------------------- LMDB through liblmdb
class _Val(ctypes.Structure):
    _fields_ = [("mv_size", ctypes.c_size_t), ("mv_data", ctypes.c_void_p)]


MDB_NOSUBDIR = 0x4000
MDB_RDONLY = 0x20000
MDB_NOLOCK = 0x400000
MDB_FIRST, MDB_NEXT = 0, 8
MDB_NOTFOUND = -30798


class LmdbError(RuntimeError):
    pass


class Lmdb:
    """Just enough of liblmdb for writing a Caffe LMDB and reading one back, in key order."""

    def __init__(self, library: str | Path):
        self.lib = ctypes.CDLL(str(library))
        self.lib.mdb_strerror.restype = ctypes.c_char_p

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise LmdbError(f"{what}: {self.lib.mdb_strerror(rc).decode()} ({rc})")

    def _open(self, path: Path, flags: int, map_size: int):
        env = ctypes.c_void_p()
        self._check(self.lib.mdb_env_create(ctypes.byref(env)), "mdb_env_create")
        self._check(self.lib.mdb_env_set_mapsize(env, ctypes.c_size_t(map_size)), "mdb_env_set_mapsize")
        self._check(self.lib.mdb_env_open(env, str(path).encode(), flags, 0o664), f"mdb_env_open {path}")
        return env

    def write(self, path: Path, items, map_size: int = 1 << 34) -> int:
        """Write (key bytes, value bytes) pairs into a new LMDB folder ``path`` in one
        transaction; returns the count."""
        Path(path).mkdir(parents=True, exist_ok=False)
        env = self._open(path, 0, map_size)
        try:
            txn, dbi = ctypes.c_void_p(), ctypes.c_uint()
            self._check(self.lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)), "mdb_txn_begin")
            self._check(self.lib.mdb_dbi_open(txn, None, 0, ctypes.byref(dbi)), "mdb_dbi_open")
            n = 0
            for key, value in items:
                kb, vb = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
                k = _Val(len(key), ctypes.cast(kb, ctypes.c_void_p))
                v = _Val(len(value), ctypes.cast(vb, ctypes.c_void_p))
                self._check(self.lib.mdb_put(txn, dbi, ctypes.byref(k), ctypes.byref(v), 0), "mdb_put")
                n += 1
            self._check(self.lib.mdb_txn_commit(txn), "mdb_txn_commit")
            return n
        finally:
            self.lib.mdb_env_close(env)

    def read(self, path: Path):
        """(key, value) pairs of an LMDB folder in key order."""
        env = self._open(path, MDB_RDONLY | MDB_NOLOCK, 1 << 34)
        try:
            txn, dbi, cur = ctypes.c_void_p(), ctypes.c_uint(), ctypes.c_void_p()
            self._check(self.lib.mdb_txn_begin(env, None, MDB_RDONLY, ctypes.byref(txn)), "mdb_txn_begin")
            self._check(self.lib.mdb_dbi_open(txn, None, 0, ctypes.byref(dbi)), "mdb_dbi_open")
            self._check(self.lib.mdb_cursor_open(txn, dbi, ctypes.byref(cur)), "mdb_cursor_open")
            out, op = [], MDB_FIRST
            k, v = _Val(), _Val()
            while True:
                rc = self.lib.mdb_cursor_get(cur, ctypes.byref(k), ctypes.byref(v), op)
                if rc == MDB_NOTFOUND:
                    break
                self._check(rc, "mdb_cursor_get")
                out.append((ctypes.string_at(k.mv_data, k.mv_size), ctypes.string_at(v.mv_data, v.mv_size)))
                op = MDB_NEXT
            self.lib.mdb_cursor_close(cur)
            self.lib.mdb_txn_abort(txn)
            return out
        finally:
            self.lib.mdb_env_close(env)
