import csv

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.cli import main


def test_predict_folder_csv_heatmaps_and_bad_file(tiny_artifact, tmp_path, capsys):
    folder = tmp_path / "photos"
    save_image(folder / "sample_1_malignant_mel.jpg", lesion_like(1))
    save_image(folder / "sub" / "benign_nv_2.png", lesion_like(2), "PNG")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    noise = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    save_image(folder / "noise_3_nv.png", noise, "PNG")  # not dermoscopy: refused, no verdict
    out = tmp_path / "out.csv"
    code = main(
        [
            "predict",
            str(folder),
            "--model",
            str(tiny_artifact),
            "--csv",
            str(out),
            "--heatmaps",
            str(tmp_path / "maps"),
            "--tta",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(by_name) == {"sample_1_malignant_mel.jpg", "benign_nv_2.png", "broken.jpg", "noise_3_nv.png"}
    refused = by_name["noise_3_nv.png"]
    assert refused["decision"] == "refused" and refused["prediction"] == "" and refused["correct"] == ""
    assert "dermoscopy" in refused["reason"] and float(refused["p_nv"]) > 0  # figures kept for analysis
    assert by_name["sample_1_malignant_mel.jpg"]["true_label"] == "mel"
    assert by_name["sample_1_malignant_mel.jpg"]["correct"] in ("True", "False")
    assert by_name["broken.jpg"]["error"]
    assert {f"p_{c}" for c in ("akiec", "mel", "nv")} <= set(rows[0])
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "benign_nv_2_heatmap.png",
        "noise_3_nv_heatmap.png",
        "sample_1_malignant_mel_heatmap.png",
    ]
    printed = capsys.readouterr().out
    assert "1 unreadable" in printed and "1 refused (not dermoscopy: no verdict)" in printed
    assert "accuracy (benign/malignant) on 2 assessed labelled" in printed
    assert "1 labelled file(s) refused, not counted" in printed
    assert "not a diagnosis" in printed


def test_predict_nothing_found(tiny_artifact, tmp_path):
    assert main(["predict", str(tmp_path), "--model", str(tiny_artifact), "--quiet"]) == 2


def test_quantize_makes_a_loadable_int8_artifact(tiny_artifact, tmp_path):
    import numpy as np

    from dermalens import Classifier
    from dermalens.training.quantize import quantize_artifact

    images = [lesion_like(i) for i in range(8)]
    out = quantize_artifact(tiny_artifact, tmp_path / "int8", images, batch=4)
    fp32, int8 = Classifier.load(tiny_artifact), Classifier.load(out)
    assert int8.meta.name.endswith("-int8")
    assert (out / "model.onnx").stat().st_size < (tiny_artifact / "model.onnx").stat().st_size / 2
    a = np.array(list(fp32.predict(lesion_like(20)).probabilities.values()))
    b = np.array(list(int8.predict(lesion_like(20)).probabilities.values()))
    assert np.abs(a - b).max() < 0.2


def test_predict_compare_prints_a_row_per_model_and_writes_one_csv_row_each(
    tiny_artifact, tiny_artifact_other, tmp_path, capsys
):
    folder = tmp_path / "photos"
    save_image(folder / "one_mel.jpg", lesion_like(11))
    save_image(folder / "two.png", lesion_like(12), "PNG")
    out = tmp_path / "cmp.csv"
    args = ["predict", str(folder), "--model", str(tiny_artifact), "--model", str(tiny_artifact_other)]
    assert main([*args, "--compare", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("one_mel.jpg", "two.png"):
        block = printed.split(name, 1)[1].split("\n\n", 1)[0]
        assert "tiny-test" in block and "tiny-other" in block and "ensemble" in block
        assert "P(benign)" in printed and "P(malig.)" in printed
    rows = list(csv.DictReader(out.read_bytes().decode("utf-8-sig").splitlines()))
    assert len(rows) == 6 and {r["model"] for r in rows} == {"tiny-test", "tiny-other", "ensemble"}
    by = {(r["file"].rsplit("/", 1)[-1], r["model"]): r for r in rows}
    a, b, both = (by[("two.png", m)] for m in ("tiny-test", "tiny-other", "ensemble"))
    assert float(both["p_malignant"]) == pytest.approx(
        (float(a["p_malignant"]) + float(b["p_malignant"])) / 2, abs=2e-4
    )
    assert float(a["p_malignant"]) != pytest.approx(float(b["p_malignant"]), abs=1e-4)  # different models


@pytest.mark.realdata
def test_dicom_folders_are_predicted_and_evaluated_with_sets(sets_artifact, dicom_folder, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert main(["predict", str(dicom_folder), "--model", str(sets_artifact), "--out", str(out)]) == 0
    screen = capsys.readouterr().out
    assert "about 90 of every 100 images" in screen
    rows = list(csv.DictReader(out.read_bytes().decode("utf-8-sig").splitlines()))
    assert len(rows) == 6 and all(r["file"].endswith(".dcm") and not r["error"] for r in rows)
    for r in rows:
        assert r["prediction_set"].split("|")[0] == r["prediction"]
        assert int(r["set_size"]) == len(r["prediction_set"].split("|")) and float(r["set_coverage"]) == 0.9
    wider = tmp_path / "wider.csv"
    argv = ["predict", str(dicom_folder), "--model", str(sets_artifact), "--coverage", "0.95", "--quiet"]
    assert main([*argv, "--out", str(wider)]) == 0
    more = {r["file"]: r for r in csv.DictReader(wider.read_bytes().decode("utf-8-sig").splitlines())}
    assert all(
        set(r["prediction_set"].split("|")) <= set(more[r["file"]]["prediction_set"].split("|")) for r in rows
    )
    report = tmp_path / "eval"
    argv = ["evaluate", "--model", str(sets_artifact), "--data", str(dicom_folder), "--n-boot", "20"]
    assert main([*argv, "--out", str(report), "--no-progress"]) == 0
    scored = list(csv.DictReader((report / "predictions.csv").open(encoding="utf-8")))
    assert len(scored) == 6 and all(r["prediction_set"] for r in scored)
