"""Score a whole archive on one machine: items in, rows out, batch by batch, resumable.

Memory stays bounded whatever the number of images: one batch of files is read (and hashed, for
the resume key) in threads, scored by the one engine (`inference.engine`, through the
`Classifier`), written to the sink and dropped. A resumed job skips every image whose (path,
SHA-256) the output already holds, unreadable ones included: they are reported once, with their
error, and never retried forever. `score_items` is also what each Ray actor runs (`archive.ray`),
so the two paths give the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from dermalens.archive.sink import Sink
from dermalens.archive.sources import Item
from dermalens.core.decode import ImageDecodeError, decode_image
from dermalens.core.hashing import bytes_sha256
from dermalens.core.taxonomy import MALIGNANT_LABEL
from dermalens.inference.predictor import Classifier
from dermalens.inference.results import REFUSED, Prediction, PredictionError
from dermalens.inference.rows import output_row

#: Where a job's items come from: called once to count them and once to score them (each call
#: walks the folders or manifests again, so nothing is held in memory).
ItemSource = Callable[[], Iterable[Item]]
#: What one scored image gives the caller (the CLI prints tables and writes heatmaps from it).
Scored = tuple[Item, str, Prediction | PredictionError]


@dataclass
class Summary:
    """The one counter of a job's results, for its progress line, its summary and its accuracy on
    labelled files (`count_rows` counts the written rows, the local and the Ray job alike)."""

    total: int = 0
    already: int = 0
    scored: int = 0
    refused: int = 0
    malignant: int = 0
    unreadable: int = 0
    #: Labelled images with a verdict, and those of them whose verdict matches the label.
    judged: int = 0
    right: int = 0
    #: Labelled images the gate refused: neither right nor wrong, counted apart.
    labelled_refused: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def left(self) -> int:
        return self.total - self.already - self.scored

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        if self.scored == 0 and self.already == self.total:
            return f"nothing to do: all {self.total} images are already in the output"
        return (
            f"{self.scored} images scored in {self.seconds:.0f} s ({self.rate:.1f} images/s): "
            f"{self.scored - self.refused - self.unreadable} assessed ({self.malignant} malignant), "
            f"{self.refused} refused (no verdict), {self.unreadable} unreadable; "
            f"{self.already} already in the output, skipped"
        )


def read(item: Item) -> tuple[bytes | Path, str]:
    """The file's bytes and SHA-256, or its path and no hash when it cannot be read (the engine
    then reports why, and the row keeps the error)."""
    try:
        data = item.path.read_bytes()
    except OSError:
        return item.path, ""
    return data, bytes_sha256(data)


def unreadable(item: Item, compare: bool = False) -> dict[str, Any]:
    """The row of a file that cannot be read at all (missing, no permission), in the decoder's own
    words: the local job and the Ray driver write the same one."""
    try:
        decode_image(item.path)
        error = PredictionError(str(item.path), "cannot be read", "corrupt")  # readable again: a race
    except ImageDecodeError as err:
        error = PredictionError(str(item.path), str(err), err.kind)
    return output_row(item.path, "", error, "" if compare else None, item.label)


def batched(source: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while chunk := list(islice(source, size)):
        yield chunk


def score_items(
    classifier: Classifier,
    chunk: Sequence[Item],
    loaded: Sequence[tuple[bytes | Path, str]],
    *,
    threshold: float | None = None,
    compare: bool = False,
    heatmap: bool = False,
) -> tuple[list[Scored], list[dict[str, Any]]]:
    """One batch through the engine: (item, sha256, result) per image and the rows to write (one
    per image, or one per model and the ensemble with `compare`). Each result is judged against its
    item's label here, once (`Prediction.judged`): the rows, the screen and the counts read it."""
    results = classifier.predict(
        [data for data, _ in loaded],
        metadata=[i.patient for i in chunk],
        threshold=threshold,
        compare=compare,
        heatmap=heatmap,
        keep_image=heatmap,
    )
    scored: list[Scored] = [
        (i, sha, r.judged(i.label, filename=str(i.path), sha256=sha) if isinstance(r, Prediction) else r)
        for i, (_, sha), r in zip(chunk, loaded, results, strict=True)
    ]
    rows = []
    for item, sha, result in scored:
        if compare and isinstance(result, Prediction):
            rows += [output_row(item.path, sha, one, one.model) for one in [*(result.members or []), result]]
        else:
            rows.append(output_row(item.path, sha, result, "" if compare else None, item.label))
    return scored, rows


def plan(source: ItemSource, sink: Sink) -> Summary:
    """The job's counts before it starts: every item (a manifest is checked whole here) and those
    the output already holds by path (their hashes are compared when they are read)."""
    done_paths = {path for path, _ in sink.done()}
    summary = Summary()
    for item in source():
        summary.total += 1
        summary.already += str(item.path) in done_paths
    return summary


def run_local(
    classifier: Classifier,
    source: ItemSource,
    sink: Sink,
    summary: Summary,
    *,
    batch: int = 32,
    threshold: float | None = None,
    compare: bool = False,
    heatmap: bool = False,
    on_batch: Callable[[list[Scored], Summary], None] | None = None,
) -> Summary:
    """Score every item of `sources` not yet in `sink` (counted by `plan`), writing each batch as it
    finishes; `on_batch` is told each batch's results. The sink is closed at the end."""
    done = sink.done()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        for chunk in batched(iter(source()), batch):
            loaded = list(pool.map(read, chunk))
            fresh = [
                (i, got) for i, got in zip(chunk, loaded, strict=True) if (str(i.path), got[1]) not in done
            ]
            done.update((str(i.path), sha) for i, (_, sha) in fresh)  # an image listed twice is scored once
            rows = [unreadable(i, compare) for i, (data, _) in fresh if isinstance(data, Path)]
            readable = [(i, got) for i, got in fresh if not isinstance(got[0], Path)]
            scored: list[Scored] = []
            if readable:
                scored, more = score_items(
                    classifier,
                    [i for i, _ in readable],
                    [got for _, got in readable],
                    threshold=threshold,
                    compare=compare,
                    heatmap=heatmap,
                )
                rows += more
            if not rows:
                continue
            sink.write(rows)
            count_rows(summary, rows)
            summary.seconds = time.perf_counter() - started
            if on_batch is not None:
                on_batch(scored, summary)
    sink.close()
    summary.already = summary.total - summary.scored
    return summary


def count_rows(summary: Summary, rows: Sequence[dict[str, Any]]) -> None:
    """Count written rows by image (with ``compare`` an image's last row is the ensemble's): each
    reads the result's own fields (`Prediction.flat`), nothing is decided again here."""
    last = {(r["file"], r["sha256"]): r for r in rows}
    for row in last.values():
        summary.scored += 1
        if row.get("error"):
            summary.unreadable += 1
            continue
        summary.refused += row["decision"] == REFUSED
        summary.malignant += row["decision"] == MALIGNANT_LABEL
        if row.get("correct") is not None:
            summary.judged += 1
            summary.right += bool(row["correct"])
        elif row.get("true_label") and row["decision"] == REFUSED:
            summary.labelled_refused += 1
