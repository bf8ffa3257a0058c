"""Read what W&B wrote for an offline run, straight from its `run-*.wandb` transaction log.

wandb no longer ships a Python reader for this file, so tests parse it here: a
7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB blocks of records
(4-byte CRC-32, 2-byte length, 1-byte type: full, first, middle, last), each
payload a `wandb_internal_pb2.Record`. The record types are wandb's own protobufs.
"""

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B transaction log"
    payloads, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # too little room left in the block for a record header
            pos += BLOCK - pos % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if kind == 0 and length == 0:
            break
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, "corrupt record"
        pos += 7 + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            payloads.append(pending)
    return payloads


def _value(item: Any) -> Any:
    if item.value_json:
        return json.loads(item.value_json)
    for name in ("number", "integer", "boolean", "text"):
        if item.HasField(name):
            return getattr(item, name)
    return None


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)


def read_run(run_dir: Path, wait_s: float = 30) -> OfflineRun:
    """Config, history rows, summary and exit code of the offline run in `run_dir`.

    W&B's service may still be writing the file when the run's process has closed it:
    read again until its exit record is there (or `wait_s` has passed).
    """
    deadline = time.monotonic() + wait_s
    run = _read(run_dir)
    while run.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.2)
        run = _read(run_dir)
    return run


def _read(run_dir: Path) -> OfflineRun:
    (log_file,) = Path(run_dir).glob("run-*.wandb")
    run = OfflineRun()
    for payload in _payloads(log_file.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group, run.tags = record.run.display_name, record.run.run_group, list(record.run.tags)
            run.config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append({_key(i): _value(i) for i in record.history.item})
        elif kind == "summary":
            run.summary.update({_key(i): _value(i) for i in record.summary.update})
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run
