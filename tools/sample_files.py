"""Arrow batches and files for the sample generators: rows made in batches, written atomically
as parquet or JSON Lines."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import secrets
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import accumulate, chain

import pyarrow as pa
import pyarrow.parquet as pq

from ultrafeedback_kto import UPSTREAM_SCHEMA

#: A conversation as the upstreams store it: a list of ``{"content", "role"}`` messages.
MESSAGES_TYPE = UPSTREAM_SCHEMA.field("chosen").type
_MESSAGE_TYPE = MESSAGES_TYPE.value_type
# Roles of a message list of length k: user, assistant, user, ..., assistant.
_ROLES = tuple(tuple(("user", "assistant")[j % 2] for j in range(k)) for k in range(8))


def list_offsets(lengths: Iterable[int]) -> pa.Array:
    """The offsets of a ``pa.ListArray`` whose lists have ``lengths``."""
    offsets = array("i", [0])
    offsets.extend(accumulate(lengths))
    return pa.array(offsets, pa.int32())


def messages_array(turn_lists: Sequence[Sequence[str]]) -> pa.Array:
    """Message lists (``MESSAGES_TYPE``) from the contents of their turns, whose roles
    alternate user, assistant, ..., assistant."""
    lengths = list(map(len, turn_lists))
    children = {
        "content": pa.array(list(chain.from_iterable(turn_lists)), pa.string()),
        "role": pa.array(list(chain.from_iterable(map(_ROLES.__getitem__, lengths))), pa.string()),
    }
    fields = list(_MESSAGE_TYPE)
    values = pa.StructArray.from_arrays([children[field.name] for field in fields], fields=fields)
    return pa.ListArray.from_arrays(list_offsets(lengths), values, type=MESSAGES_TYPE)


def check_count(count: int, name: str) -> None:
    """A ValueError naming ``name`` unless ``count`` is a non-negative integer."""
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {count!r}")


def batches(
    make_batch: Callable[[int, int], pa.RecordBatch], n_rows: int, batch_size: int, name: str = "n_rows"
) -> Iterator[pa.RecordBatch]:
    """``make_batch(start, stop)`` for consecutive slices of at most ``batch_size`` of
    ``range(n_rows)``; the arguments (``n_rows`` called ``name`` in errors) are checked
    at the call."""
    check_count(n_rows, name)  # now, not at the first next()
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return (make_batch(start, min(start + batch_size, n_rows)) for start in range(0, n_rows, batch_size))


def output_suffix(path: pathlib.Path) -> str:
    """``.parquet`` or ``.jsonl`` (case-insensitive), or a ValueError naming ``path``."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"cannot write {str(path)!r}: unknown suffix {path.suffix!r} (use .parquet or .jsonl)")
    return suffix


def write_file(
    path: str | os.PathLike,
    schema: pa.Schema,
    make_batches: Callable[[], Iterable[pa.RecordBatch]],
    row_group_size: int,
    compression: str = "snappy",
    compression_level: int | None = None,
) -> pathlib.Path:
    """Write ``path`` (its suffix checked by ``output_suffix``) from ``make_batches()`` as
    parquet (row groups of at most ``row_group_size`` rows, ``compression`` as pyarrow
    takes it, snappy by default) or as JSON Lines (each row as ``to_pylist`` gives it:
    keys in schema order, nulls as ``null``), through a temporary sibling renamed at
    the end, so an interrupted run never leaves a partial file; return ``path``."""
    path = pathlib.Path(path)
    suffix = output_suffix(path)
    if suffix == ".jsonl" and (compression != "snappy" or compression_level is not None):
        raise ValueError(f"cannot write {str(path)!r}: compression applies to .parquet only")
    if compression.lower() != "none" and not pa.Codec.is_available(compression):
        raise ValueError(f"cannot write {str(path)!r}: unknown or unavailable compression {compression!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling on the same file system, created exclusively with the
    # ordinary permissions (mkstemp would leave the final file at 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            if suffix == ".parquet":
                options = {"compression": compression, "compression_level": compression_level}
                with pq.ParquetWriter(f, schema, **options) as writer:
                    for batch in make_batches():
                        writer.write_batch(batch, row_group_size=row_group_size)
            else:  # from the same batches, so both formats hold the same rows
                for batch in make_batches():
                    for row in batch.to_pylist():
                        f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclasses.dataclass(frozen=True)
class Rows:
    """The fake rows of one upstream file: ``make_batch(seed, start, stop)`` makes rows
    ``start`` to ``stop`` as a batch of ``schema``, each row a pure function of the seed and
    its index, so the first ``k`` rows of any output are a ``k``-row output; files hold row
    groups of at most ``row_group_size`` rows. ``count`` names the number of rows in errors."""

    schema: pa.Schema
    make_batch: Callable[[int, int, int], pa.RecordBatch]
    row_group_size: int
    count: str = "n_rows"

    def batches(self, n_rows: int, seed: int = 0, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_size`` rows (``row_group_size`` by default)
        holding ``n_rows`` rows; memory is bounded by one batch."""
        size = self.row_group_size if batch_size is None else batch_size
        return batches(partial(self.make_batch, seed), n_rows, size, self.count)

    def table(self, n_rows: int, seed: int = 0) -> pa.Table:
        """All ``n_rows`` rows as one ``pyarrow.Table``."""
        return pa.Table.from_batches(list(self.batches(n_rows, seed)), schema=self.schema)

    def write(
        self,
        path: str | os.PathLike,
        n_rows: int,
        seed: int = 0,
        *,
        compression: str = "snappy",
        compression_level: int | None = None,
    ) -> pathlib.Path:
        """Write ``n_rows`` rows to ``path`` and return it, the format by its suffix, as
        ``write_file`` writes: ``.parquet`` (pyarrow's default compression, snappy, unless
        ``compression`` and ``compression_level`` say otherwise) or ``.jsonl`` (one JSON
        object per line, keys in schema order), through a temporary sibling renamed at the
        end, so an interrupted run never leaves a partial file."""
        check_count(n_rows, self.count)
        make_batches = partial(self.batches, n_rows, seed)
        return write_file(path, self.schema, make_batches, self.row_group_size, compression, compression_level)
