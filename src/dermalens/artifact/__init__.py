"""The model artifact: the hinge between training and serving, in one torch-free package.

An artifact is a folder::

    artifact.json   everything needed to use the weights (`meta.ArtifactMeta`) + file hashes
    model.onnx      inputs "image" [N,3,H,W] (+ "metadata" [N,M] for fusion models); outputs "logits" [N,C],
                    "features" [N,D], "cam" [N,C,h,w]
    weights.pt      PyTorch state dict (training side: fine-tuning, export, Grad-CAM)
    ood.npz         statistics of the out-of-distribution gate (`ood.OodGate`, optional)
    baseline.npz    a classical baseline's arrays (instead of the network files)
    members/<name>/ an ensemble artifact's other networks (`meta.EnsembleSpec`), each a complete
                    artifact without weights.pt, its artifact.json pinned by the primary's hashes

`meta` says what artifact.json holds, `kinds` which kinds of model there are, `store` finds, reads
and verifies an artifact, `ood` is the stored gate, and `write` is the only way anything writes
into an artifact folder (`tests/test_layers.py` checks that no other module does). Fitting
(temperature, decision rule, gate, quantisation, soups, export) happens where its libraries are;
the result is handed to `write`. It imports `core` only, never torch.
"""
