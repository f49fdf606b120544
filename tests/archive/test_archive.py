"""Scoring a whole archive (issue #19): rows streamed as batches finish, resume after SIGKILL,
manifests, typed Parquet, unreadable files reported once, progress, and the same job on Ray."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.archive.job import Summary, count_rows, plan, run_local
from dermalens.archive.sink import CsvSink, SinkError, open_sink
from dermalens.archive.sources import ManifestError, items
from dermalens.cli import main
from dermalens.inference.predictor import Classifier
from dermalens.inference.results import Prediction, PredictionError
from dermalens.inference.rows import output_columns, output_row


def _folder(root: Path, n: int, broken: int = 0) -> Path:
    for i in range(n):
        save_image(
            root / f"{i // 10:02d}" / f"img_{i:03d}_{'mel' if i % 3 == 0 else 'nv'}.png",
            lesion_like(i, (64, 48)),
            "PNG",
        )
    for i in range(broken):
        (root / f"broken_{i}.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return root


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_bytes().decode("utf-8-sig").splitlines()))


def _predict(source: Path, model: Path, out: Path, *extra: str) -> int:
    return main(["predict", str(source), "--model", str(model), "--out", str(out), "--quiet", *extra])


def _parquet_rows(path: Path) -> list[dict[str, object]]:
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").to_table().to_pylist()


def test_rows_are_written_as_batches_finish(tiny_artifact, tmp_path):
    folder = _folder(tmp_path / "imgs", 10)
    clf = Classifier.load(tiny_artifact)
    out = tmp_path / "r.csv"
    sink = open_sink(out, output_columns(clf.classes), resume=False)
    source = lambda: items([folder])  # noqa: E731
    summary = plan(source, sink)
    seen: list[int] = []
    run_local(clf, source, sink, summary, batch=3, on_batch=lambda s, _: seen.append(len(_csv_rows(out))))
    assert seen == [3, 6, 9, 10]  # on disk after every batch, not at the end
    rows = _csv_rows(out)
    assert len({r["file"] for r in rows}) == 10 and all(len(r["sha256"]) == 64 for r in rows)
    assert summary.scored == 10 and "images/s" in summary.line()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_killed_job_resumes_and_holds_every_image_once(tiny_artifact, tmp_path, suffix):
    folder = _folder(tmp_path / "imgs", 160, broken=2)
    out = tmp_path / f"results{suffix}"
    cmd = [sys.executable, "-m", "dermalens.cli", "predict", str(folder), "--model", str(tiny_artifact)]
    cmd += ["--out", str(out), "--batch", "4", "--quiet"]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120

    def written() -> int:
        if suffix == ".csv":
            return len(_csv_rows(out)) if out.is_file() else 0
        journal = out / "_pending.jsonl"
        return journal.stat().st_size if journal.is_file() else 0

    while written() < (8 if suffix == ".csv" else 1) and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before it could be killed"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    if suffix == ".csv":
        partial = _csv_rows(out)  # whole rows only: every one parses with every column
        assert partial and all(r["error"] is not None and r["ood"] in ("True", "False", "") for r in partial)
    again = subprocess.run([*cmd[:-1], "--resume", "--quiet"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = _csv_rows(out) if suffix == ".csv" else _parquet_rows(out)
    files = [str(r["file"]) for r in rows]
    assert len(files) == len(set(files)) == 162  # every image exactly once, the unreadable ones too
    broken = [r for r in rows if "broken" in str(r["file"])]
    assert len(broken) == 2 and all(r["error"] for r in broken)
    finished = subprocess.run([*cmd[:-1], "--resume", "--quiet"], capture_output=True, text=True, timeout=300)
    assert "nothing to do: all 162 images are already in the output" in finished.stdout
    assert len(_csv_rows(out) if suffix == ".csv" else _parquet_rows(out)) == 162  # unreadable: never retried


def test_parquet_columns_are_typed_like_the_csv(tiny_artifact, tmp_path):
    import pyarrow as pa
    import pyarrow.dataset as ds

    folder = _folder(tmp_path / "imgs", 6, broken=1)
    for out in ("r.parquet", "r.csv"):
        assert _predict(folder, tiny_artifact, tmp_path / out) == 0
    table = ds.dataset(tmp_path / "r.parquet", format="parquet").to_table()
    assert table.schema.names == list(_csv_rows(tmp_path / "r.csv")[0])  # the same columns, in order
    types = {f.name: f.type for f in table.schema}
    assert (
        types["p_malignant"] == pa.float64() and types["ood"] == pa.bool_() and types["correct"] == pa.bool_()
    )
    assert types["file"] == pa.string() and not list((tmp_path / "r.parquet").glob("_*"))  # journal gone
    rows = table.to_pylist()
    assert sum(r["error"] is not None for r in rows) == 1 and sum(r["p_malignant"] is None for r in rows) == 1


def test_an_existing_output_is_never_overwritten_without_resume(tiny_artifact, tmp_path, capsys):
    folder = _folder(tmp_path / "imgs", 2)
    out = tmp_path / "r.csv"
    out.write_text("precious\n")
    assert _predict(folder, tiny_artifact, out) == 2
    assert "--resume" in capsys.readouterr().err and out.read_text() == "precious\n"
    with pytest.raises(SinkError, match="columns differ"):
        CsvSink(out, output_columns(["nv", "mel"]))  # not ours: refused, not appended to
    with pytest.raises(SinkError, match=r"\.csv or \.parquet"):
        open_sink(tmp_path / "r.xlsx", output_columns(["nv"]), resume=False)


def test_manifest_rows_carry_labels_and_patient_data(tiny_fusion_artifact, tmp_path, capsys):
    for i in range(3):
        save_image(tmp_path / "imgs" / f"{i}.png", lesion_like(i, (64, 48)), "PNG")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,label,age,sex,site\nimgs/0.png,melanoma,63,M,back\nimgs/1.png,,,,\nimgs/2.png,nv,40,female,face\n"
    )
    found = list(items([manifest]))
    assert [i.path for i in found] == [
        tmp_path / "imgs" / f"{i}.png" for i in range(3)
    ]  # relative to the manifest
    assert found[0].label == "mel" and found[0].patient.age == 63 and found[0].patient.sex == "male"
    out = tmp_path / "r.csv"
    assert (
        main(["predict", str(manifest), "--model", str(tiny_fusion_artifact), "--out", str(out), "--quiet"])
        == 0
    )
    rows = {Path(r["file"]).name: r for r in _csv_rows(out)}
    assert rows["0.png"]["true_label"] == "mel" and rows["0.png"]["age"] == "63.0" and rows["0.png"]["site"]
    assert rows["1.png"]["age"] == "" and rows["1.png"]["correct"] == ""
    bad = tmp_path / "bad.csv"
    bad.write_text("path,age\nimgs/0.png,63\nimgs/1.png,two hundred\n")
    with pytest.raises(ManifestError, match="line 3"):
        list(items([bad]))
    assert (
        main(["predict", str(bad), "--model", str(tiny_fusion_artifact), "--out", str(tmp_path / "b.csv")])
        == 2
    )
    assert "line 3" in capsys.readouterr().err and not (tmp_path / "b.csv").exists()  # nothing left behind
    with pytest.raises(ManifestError, match="path column"):
        list(items([_write(tmp_path / "nopath.csv", "image,label\n0.png,mel\n")]))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_missing_file_in_a_manifest_is_reported_in_the_output(tiny_artifact, tmp_path):
    save_image(tmp_path / "a.png", lesion_like(0, (64, 48)), "PNG")
    manifest = _write(tmp_path / "m.csv", "path\na.png\nmissing.png\n")
    out = tmp_path / "r.csv"
    assert _predict(manifest, tiny_artifact, out) == 0
    rows = {Path(r["file"]).name: r for r in _csv_rows(out)}
    assert "no such file" in rows["missing.png"]["error"] and rows["a.png"]["error"] == ""


def _ray_available() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'dermalens[ray]')"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_ray_available() is not None, reason=str(_ray_available()))
def test_ray_gives_the_local_rows(ham10000, tmp_path):
    """≥ 200 real HAM10000 images scored locally and through a local Ray instance (2 CPUs, two
    actors of one thread): the same rows, probabilities within 1e-6."""
    import ray

    from dermalens.archive.cluster import connect, run_ray

    files = sorted((ham10000 / "images").glob("*.jpg"))[:210]
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label\n" + "".join(f"{f},{'mel' if i % 2 else ''}\n" for i, f in enumerate(files))
    )
    (tmp_path / "gone.jpg").touch()
    manifest.write_text(manifest.read_text() + f"{tmp_path / 'gone.jpg'},\n{tmp_path / 'missing.jpg'},\n")
    clf = Classifier.load()
    columns = output_columns(clf.classes)
    local_out, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    source = lambda: items([manifest])  # noqa: E731
    sink = open_sink(local_out, columns, resume=False)
    run_local(clf, source, sink, plan(source, sink), batch=32)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sink = open_sink(ray_out, columns, resume=False)
        options = {"tta": 1, "threshold": None, "columns": {"metadata": False, "compare": False}}
        summary = run_ray(
            connect("auto"),
            None,
            source,
            sink,
            plan(source, sink),
            options,
            num_actors=2,
            threads_per_actor=1,
        )
    finally:
        ray.shutdown()
    assert summary.scored == 212 and summary.unreadable == 2
    local = {r["file"]: r for r in _parquet_rows(local_out)}
    remote = {r["file"]: r for r in _parquet_rows(ray_out)}
    assert set(local) == set(remote) and len(local) == 212
    for name, row in local.items():
        other = remote[name]
        assert {k: v for k, v in row.items() if not isinstance(v, float)} == {
            k: v for k, v in other.items() if not isinstance(v, float)
        }
        floats = [k for k, v in row.items() if isinstance(v, float)]
        assert np.allclose([row[k] for k in floats], [other[k] for k in floats], rtol=0, atol=1e-6)


def test_progress_shows_done_left_rate_and_counts(tiny_artifact, tmp_path, capsys):
    folder = _folder(tmp_path / "imgs", 6, broken=1)
    assert (
        main(["predict", str(folder), "--model", str(tiny_artifact), "--out", str(tmp_path / "r.csv")]) == 0
    )
    captured = capsys.readouterr()
    assert "7/7" in captured.err and "img/s" in captured.err and "unreadable=1" in captured.err
    assert "refused=" in captured.err
    assert "7 images scored in" in captured.out and "1 unreadable" in captured.out  # the one-line summary
    assert (
        main(
            [
                "predict",
                str(folder),
                "--model",
                str(tiny_artifact),
                "--out",
                str(tmp_path / "r.csv"),
                "--resume",
            ]
        )
        == 0
    )
    assert "nothing to do: all 7 images are already in the output" in capsys.readouterr().out


def test_the_summary_is_the_one_counter_of_judged_results() -> None:
    """Accuracy, refusals and errors are counted from the written rows (the results' flat form), so
    the local job, the Ray job and the screen share one count; a refused labelled image is neither."""

    def result(p_malignant: float, ood: bool = False) -> Prediction:
        decision = "refused" if ood else ("malignant" if p_malignant >= 0.5 else "benign")
        return Prediction.decided(
            probabilities={"nv": 1 - p_malignant, "mel": p_malignant},
            p_malignant=p_malignant,
            top_class="mel" if p_malignant >= 0.5 else "nv",
            decision=decision,
            threshold=0.5,
            ood=ood,
            ood_score=2.0 if ood else 0.1,
            ranked_set=None,
            coverage=None,
        )

    judged = [
        ("a", result(0.9).judged("mel")),
        ("b", result(0.9).judged("nv")),
        ("c", result(0.2).judged(None)),
    ]
    judged.append(("d", result(0.9, ood=True).judged("mel")))
    rows = [output_row(name, name, one) for name, one in judged]
    rows.append(output_row("e", "", PredictionError("e", "truncated"), label="mel"))
    summary = Summary(total=5)
    count_rows(summary, rows)
    assert (summary.scored, summary.unreadable, summary.refused, summary.malignant) == (5, 1, 1, 2)
    assert (summary.judged, summary.right, summary.labelled_refused) == (2, 1, 1)
    assert judged[3][1].correct is None and judged[1][1].correct is False and judged[0][1].correct_dx is True
