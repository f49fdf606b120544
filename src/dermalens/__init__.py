"""dermalens: dermoscopy lesion classification with heatmaps and an out-of-distribution gate.

Research and education software, not a diagnosis. Quick start::

    from dermalens import Classifier
    clf = Classifier.load()            # the bundled default model (ONNX Runtime, no torch)
    result = clf.predict("lesion.jpg")
    print(result.prediction, result.p_malignant, result.decision, result.ood)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Classifier", "__version__"]

if TYPE_CHECKING:
    from dermalens.inference.predictor import Classifier


def __getattr__(name: str) -> Any:
    # Lazy: `import dermalens` stays cheap for the CLI and for tools that only read data.
    if name == "Classifier":
        from dermalens.inference.predictor import Classifier

        return Classifier
    raise AttributeError(name)
