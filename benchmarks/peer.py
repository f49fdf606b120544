"""The bundled model beside the peer (sklesion 0.2.2) and beside their ensemble, on Derm7pt or any
labelled dataset a user points it at, with paired intervals (issue #34).

    dermalens import --preset sklesion --out ../runs/init/sklesion       # once, from its wheel
    python benchmarks/peer.py [--data ../shared/data/derm7pt] [--split FILE --split-name test]
                              [--model models/default] [--peer ../runs/init/sklesion] [--n-boot 1000]

One engine run scores every image with both networks (each with its own preprocessing); the
bundled model, the peer and their ensemble (probabilities averaged) are then read from it. Prints
AUC (benign/malignant), melanoma-vs-rest AUC, 7-class balanced accuracy, BCC and melanoma recall,
the refusal rate, and for the peer and the ensemble the paired, lesion-grouped bootstrap interval of
each difference to the bundled model; then the latency of one image (p50 over --timing images)
for the bundled model alone and for the ensemble. The peer saw HAM10000 in training: its figures on
HAM10000 measure nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dermalens.evaluation.metrics import one_vs_auc
from dermalens.evaluation.outputs import collect, combine
from dermalens.evaluation.run import load_eval_data
from dermalens.evaluation.selection import Scored, figures, paired_comparison
from dermalens.inference.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


def scored(combined, records) -> tuple[Scored, float, float]:
    """One combined output's rows, its melanoma-vs-rest AUC and its refusal rate."""
    by_id = {r.image_id: r for r in records}
    rows = [by_id[i] for i in combined.image_ids]
    labels = [r.label for r in rows]
    mel = one_vs_auc(labels, combined.probs, combined.classes, "mel")
    s = Scored(
        combined.image_ids, [r.source for r in rows], labels, combined.p_malignant, combined.prediction
    )
    return s, mel, float(np.mean(combined.ood))


def latency(engine: Engine, paths: list[Path]) -> float:
    """p50 seconds for one image end to end (decode, both preprocessings, inference)."""
    times = []
    for path in paths:
        started = time.perf_counter()
        engine.run([path])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "derm7pt"))
    parser.add_argument("--split")
    parser.add_argument("--split-name", default="test")
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--peer", default=str(ROOT.parent / "runs" / "init" / "sklesion"))
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--timing", type=int, default=30, help="images timed one at a time (0 = none)")
    args = parser.parse_args()
    data = load_eval_data(args.data, args.split, args.split_name)
    # Each side runs on its own engine, so that an ensemble artifact decides by its own rule; the
    # pair is combined as `dermalens predict --model MODEL --model PEER` combines it (every network).
    model_run, peer_run = (
        collect(Engine.load(m), data.records, progress=True) for m in (args.model, args.peer)
    )
    combos = {
        "bundled": model_run.combined,
        "peer": peer_run.combined,
        "bundled + peer": combine([*model_run.members, *peer_run.members]),
    }
    lesions = {r.image_id: r.group for r in data.records}
    bundled = scored(combos["bundled"], data.records)[0]
    print(f"{len(bundled.ids)} images of {args.data}\n")
    print(
        "| model | AUC | Δ AUC (95 %) | mel-vs-rest AUC | BA | Δ BA (95 %) | BCC recall | mel recall | refused |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, combined in combos.items():
        s, mel, refused = scored(combined, data.records)
        f = figures(s, np.arange(len(s.ids)))
        auc = float(np.nanmean([v for k, v in f.items() if k.startswith("auc_")]))
        d_auc = d_ba = "—"
        if name != "bundled":
            c = paired_comparison(bundled, s, lesions, n_boot=args.n_boot)
            d_auc, d_ba = (_delta(c["rule_auc"]), _delta(c["balanced_accuracy"]))
        print(
            f"| {name} | {auc:.3f} | {d_auc} | {mel:.3f} | {f['balanced_accuracy']:.3f} | {d_ba} | "
            f"{f['bcc_recall']:.2f} | {f['mel_recall']:.2f} | {refused:.1%} |"
        )
    if args.timing:
        paths = [r.path for r in data.records[: args.timing]]
        alone, both = (
            latency(Engine.load(args.model), paths),
            latency(Engine.load([args.model, args.peer]), paths),
        )
        print(
            f"\none image end to end, p50: bundled {alone * 1000:.1f} ms, bundled + peer {both * 1000:.1f} ms"
        )
    return 0


def _delta(v: dict) -> str:
    ci = v["ci"]
    return f"{v['delta']:+.3f} ({ci[0]:+.3f} … {ci[1]:+.3f})" if ci else f"{v['delta']:+.3f}"


if __name__ == "__main__":
    sys.exit(main())
