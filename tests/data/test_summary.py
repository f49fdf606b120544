import json

from conftest import lesion_like, save_image
from dermalens.cli import main


def test_summary_json_and_eda_report(tmp_path, capsys):
    data = tmp_path / "data"
    for cls, n in (("benign", 3), ("malignant", 2)):
        for i in range(n):
            save_image(data / cls / f"{cls}{i}.bmp", lesion_like(i, (80, 60)), "BMP")
    (data / "malignant" / "broken.bmp").write_bytes(b"BM not really")
    assert main(["data", "summary", str(data), "--json", "--out", str(tmp_path / "eda")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "folder" and summary["n_images"] == 5
    assert summary["binary_counts"] == {"benign": 3, "malignant": 2}
    assert [u["image"] for u in summary["unreadable"]] == ["malignant/broken"]
    assert summary["image_sizes"] == {"80x60": 5}
    page = (tmp_path / "eda" / "eda.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
    assert (tmp_path / "eda" / "montage.png").stat().st_size > 1000


def test_summary_text(tmp_path, capsys):
    save_image(tmp_path / "MM" / "a.jpg", lesion_like(1))
    assert main(["data", "summary", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Melanoma" in out and "images: 1" in out
