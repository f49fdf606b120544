"""Where an archive job's rows go, batch by batch, so that a kill loses at most the batches in flight.

CSV (``results.csv``): UTF-8 with a BOM (Excel reads it), appended one batch at a time with a
single ``write`` of whole lines, flushed to disk. A kill between batches leaves whole rows; a row
cut by a kill inside a write (a full disk) is dropped when the job resumes.

Parquet (``results.parquet``, a directory as Spark and Ray Data write it): immutable part files
``part-NNNNNN.parquet``, each written under a temporary name and renamed into place, and a journal
``_pending.jsonl`` of the rows not yet in a part. Readers (pandas, pyarrow, DuckDB, Spark) read the
directory and skip names starting with ``_``: a half-written Parquet file, which has no footer and
which no reader can open, never appears. Columns are typed (`schema`).

Both know which images they already hold: (path, SHA-256) of every row, the resume key.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from dermalens.inference.rows import csv_cell

#: Rows gathered before the Parquet sink writes a part file (and empties its journal).
PART_ROWS = 4096
JOURNAL = "_pending.jsonl"


class SinkError(ValueError):
    """The output cannot be used as asked (it exists and --resume was not given, wrong suffix...)."""


class Sink(Protocol):
    def done(self) -> set[tuple[str, str]]: ...
    def write(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class NullSink:
    """No output file (the table on screen is the result): holds nothing, writes nothing."""

    def done(self) -> set[tuple[str, str]]:
        return set()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass


def open_sink(path: Path, columns: Sequence[tuple[str, type]], *, resume: bool) -> Sink:
    """A CSV or Parquet sink by the path's suffix. An existing output is continued only with
    `resume` (and only when it has the same columns); otherwise nothing is overwritten."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SinkError(f"{path}: the output must end in .csv or .parquet")
    if path.exists() and not resume:
        raise SinkError(
            f"{path} exists: add --resume to continue it, or choose another name (nothing was changed)"
        )
    return CsvSink(path, columns) if suffix == ".csv" else ParquetSink(path, columns)


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["file"]), str(row.get("sha256") or "")


def _write_all(fd: int, data: bytes) -> None:
    """One write() per batch (a regular file takes it whole unless the disk is full), then fsync."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


class CsvSink:
    def __init__(self, path: Path, columns: Sequence[tuple[str, type]]) -> None:
        self.path, self.names = path, [name for name, _ in columns]
        self._done: set[tuple[str, str]] = set()
        self._fd: int | None = None  # the file is made at the first write: a job that fails first leaves none
        if path.exists() and path.stat().st_size:
            self._resume()

    def _resume(self) -> None:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # a row cut by a kill inside a write: drop it
            cut = data.rfind(b"\n") + 1
            os.truncate(self.path, cut)
            data = data[:cut]
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        if reader.fieldnames != self.names:
            raise SinkError(
                f"{self.path}: its columns differ from this job's (another model or options?); "
                "use a new output file"
            )
        self._done = {_key(row) for row in reader}

    def _encode(self, rows: Sequence[dict[str, Any]], bom: bool = False) -> bytes:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.names, extrasaction="ignore", lineterminator="\n")
        writer.writerows({k: csv_cell(k, v) for k, v in row.items()} for row in rows)
        return ("\ufeff" if bom else "").encode("utf-8") + text.getvalue().encode("utf-8")

    def done(self) -> set[tuple[str, str]]:
        return set(self._done)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._fd is None:
            if not self.path.exists() or not self.path.stat().st_size:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_bytes(
                    self._encode([dict(zip(self.names, self.names, strict=True))], bom=True)
                )
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        _write_all(self._fd, self._encode(rows))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def schema(columns: Sequence[tuple[str, type]]) -> Any:
    """The Parquet schema of the rows: floats as float64, bools as bool, counts as int64, text as
    UTF-8 strings; every column nullable (a refused image has no diagnosis, an unreadable one
    no probabilities)."""
    import pyarrow as pa

    types = {float: pa.float64(), bool: pa.bool_(), int: pa.int64(), str: pa.string()}
    return pa.schema([pa.field(name, types[kind], nullable=True) for name, kind in columns])


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SinkError(
            "Parquet output needs pyarrow: pip install 'dermalens[archive]' (or write a .csv)"
        ) from None
    return pq


class ParquetSink:
    def __init__(self, path: Path, columns: Sequence[tuple[str, type]]) -> None:
        self.pq = _pyarrow()
        self.path, self.schema = path, schema(columns)
        self._done: set[tuple[str, str]] = set()
        self._parts = 0
        for part in sorted(p for p in path.glob("*.parquet") if not p.name.startswith(("_", "."))):
            if not self.pq.read_schema(part).equals(self.schema):
                raise SinkError(f"{part}: its columns differ from this job's; use a new output folder")
            table = self.pq.read_table(part, columns=["file", "sha256"])
            self._done.update(zip(table["file"].to_pylist(), table["sha256"].to_pylist(), strict=True))
            if part.stem.startswith("part-") and part.stem[5:].isdigit():
                self._parts = max(self._parts, int(part.stem[5:]) + 1)
        self._pending = [row for row in self._journal() if _key(row) not in self._done]
        self._done.update(_key(row) for row in self._pending)
        self._fd: int | None = None  # the folder is made at the first write

    def _journal(self) -> Iterator[dict[str, Any]]:
        journal = self.path / JOURNAL
        if not journal.is_file():
            return
        for line in journal.read_bytes().split(b"\n"):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: its batch is scored again
                    continue

    def done(self) -> set[tuple[str, str]]:
        return set(self._done)

    def _journal_fd(self) -> int:
        if self._fd is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        _write_all(self._journal_fd(), b"".join(json.dumps(r, allow_nan=True).encode() + b"\n" for r in rows))
        self._pending.extend(rows)
        self._done.update(_key(r) for r in rows)
        if len(self._pending) >= PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Pending rows → the next part (temporary name, then renamed), then an empty journal. A kill
        between the two leaves rows in both, which the next open drops from the journal."""
        if not self._pending:
            return
        import pyarrow as pa

        self.path.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(self._pending, schema=self.schema)
        final = self.path / f"part-{self._parts:06d}.parquet"
        temp = self.path / f"_{final.name}.tmp"
        self.pq.write_table(table, temp)
        os.replace(temp, final)
        self._parts += 1
        self._pending = []
        os.ftruncate(self._journal_fd(), 0)

    def close(self) -> None:
        self._flush()
        if self._fd is not None:
            os.close(self._fd)
            (self.path / JOURNAL).unlink(missing_ok=True)
