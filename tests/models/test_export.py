import numpy as np
import torch

from conftest import lesion_like
from dermalens.artifact.store import load_meta
from dermalens.core.preprocess import prepare
from dermalens.inference.runtime import create_runtime
from dermalens.models.export import export_torchscript


def test_onnx_and_torchscript_match_pytorch(tiny_artifact, tmp_path):
    folder, meta = load_meta(tiny_artifact)
    batch = np.stack([prepare(lesion_like(i), meta.preprocessing) for i in range(3)])
    onnx_out = create_runtime(folder, meta, "onnx").run(batch)
    torch_runtime = create_runtime(folder, meta, "torch")
    torch_out = torch_runtime.run(batch)
    for key in ("logits", "features", "cam"):
        assert np.abs(onnx_out[key] - torch_out[key]).max() <= 1e-4, key
    rotated = np.ascontiguousarray(batch.transpose(0, 1, 3, 2))  # dynamic height/width for TTA
    assert create_runtime(folder, meta, "onnx").run(rotated)["logits"].shape == (3, 7)
    path = export_torchscript(torch_runtime.model, tmp_path / "m.pt", meta.preprocessing.input_size)
    scripted = torch.jit.load(str(path))
    with torch.no_grad():
        logits = scripted(torch.from_numpy(batch))[0].numpy()
    assert np.abs(logits - torch_out["logits"]).max() <= 1e-4
