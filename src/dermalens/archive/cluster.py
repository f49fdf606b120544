"""The archive job on a Ray cluster (``dermalens predict SRC --out OUT --ray auto|ADDRESS``).

The driver hands Ray Data the images' paths (`ray.data.from_items`) and an actor pool scores them
with `map_batches`: each actor opens and verifies the model once (`Classifier.load`), reads its
batch's files itself (from a path every node sees: a shared file system or a bucket it mounts)
and runs `archive.job.score_items`, the function the local job runs, so both give the same rows.
Why not `ray.data.read_binary_files`: its read tasks, a few files each, asked for no CPU so that
the actors could hold every core, and Ray then started a worker process for each (22 on two
cores): reading alone ran at 7 images/s (`docs/performance.md`). The
scored batches stream back to the driver, which writes them to the same sink as the local job:
the same CSV or Parquet layout, the same resume by (path, SHA-256), the same atomic batches.

What the driver does itself: the first pass over the items (a manifest is checked whole), the
hashes of images the output may already hold (to resume), and the rows of files that cannot be
read at all (Ray would fail the whole dataset on a missing file). Needs ``dermalens[ray]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dermalens.archive.job import ItemSource, Scored, Summary, count_rows, read, score_items, unreadable
from dermalens.archive.sink import Sink, schema
from dermalens.archive.sources import Item
from dermalens.inference.rows import output_columns

log = logging.getLogger(__name__)


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Join a cluster (``auto``: the one `ray start` began on this machine or $RAY_ADDRESS; else
    an address such as ``ray://head:10001``) or, with ``local``, start one here."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'dermalens[ray]'") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        try:
            if address == "local":
                ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as err:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address!r}: {err}") from None
    return ray


class Scorer:
    """One Ray actor: a model opened once, scoring batches of ``{"bytes", "path"}``."""

    def __init__(self, models: list[str] | None, options: dict[str, Any], extras: dict[str, Item]) -> None:
        from dermalens.inference.predictor import Classifier

        self.classifier = Classifier.load(
            models, tta=options["tta"], threads=options["threads"], coverage=options.get("coverage")
        )
        self.options, self.extras = options, extras
        self.schema = schema(output_columns(self.classifier.classes, **options["columns"]))

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        chunk = [self.extras.get(p) or Item(Path(p), _folder_label(p)) for p in paths]
        loaded = [read(item) for item in chunk]
        _, rows = score_items(
            self.classifier,
            chunk,
            loaded,
            threshold=self.options["threshold"],
            compare=self.options["columns"]["compare"],
        )
        return pa.Table.from_pylist(rows, schema=self.schema)


def _folder_label(path: str) -> str | None:
    from dermalens.core.taxonomy import label_from_filename

    return label_from_filename(Path(path).name)


def run_ray(
    ray: Any,
    models: list[str] | None,
    source: ItemSource,
    sink: Sink,
    summary: Summary,
    options: dict[str, Any],
    *,
    num_actors: int,
    threads_per_actor: int,
    batch: int = 32,
    on_batch: Callable[[list[Scored], Summary], None] | None = None,
) -> Summary:
    """Score what `sink` does not hold yet through an actor pool; rows stream back to `sink`.

    `options`: ``tta``, ``threshold``, ``columns`` (`output_columns` keyword arguments)."""
    import time

    import pyarrow as pa

    started = time.perf_counter()
    todo, extras = _todo(source, sink, summary, options["columns"]["compare"])
    if todo:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        dataset = ray.data.from_items(
            [{"path": str(i.path)} for i in todo], override_num_blocks=-(-len(todo) // batch)
        )
        scored = dataset.map_batches(
            Scorer,
            fn_constructor_args=(models, {**options, "threads": threads_per_actor}, extras),
            batch_size=batch,
            batch_format="numpy",
            concurrency=num_actors,
            num_cpus=threads_per_actor,
        )
        for table in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            rows = pa.Table.to_pylist(table)
            sink.write(rows)
            count_rows(summary, rows)
            summary.seconds = time.perf_counter() - started
            if on_batch is not None:
                on_batch([], summary)
    sink.close()
    summary.already = summary.total - summary.scored
    return summary


def _todo(
    source: ItemSource, sink: Sink, summary: Summary, compare: bool
) -> tuple[list[Item], dict[str, Item]]:
    """The items to send to the cluster, and those of them with a label or patient data that the
    file name does not carry (the actors look them up by path). Unreadable files are written
    here, the way the local job writes them; images already in the output are skipped."""
    done = sink.done()
    done_paths = {path for path, _ in done}
    todo: list[Item] = []
    extras: dict[str, Item] = {}
    for item in source():
        key = str(item.path)
        readable = item.path.is_file() and os.access(item.path, os.R_OK)
        if key in done_paths and (key, read(item)[1]) in done:
            continue
        if not readable:
            rows = [unreadable(item, compare)]
            sink.write(rows)
            count_rows(summary, rows)
            continue
        todo.append(item)
        if item.label != _folder_label(key) or not item.patient.is_empty:
            extras[key] = item
    return todo, extras
