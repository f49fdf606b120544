"""Scoring whole archives: folders or manifests streamed through the engine into CSV or Parquet,
resumable after a kill, on one machine (`archive.job`) or a Ray cluster (`archive.cluster`)."""
