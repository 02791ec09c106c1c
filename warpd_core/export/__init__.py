"""Export bundles (a directory: bundle.json + safetensors [+ ONNX]) and the inference API the
generator uses: :func:`warpd_core.export.bundle.load_generator`.

This ``__init__`` imports nothing heavy; ``bundle_format`` is numpy/json only.
"""
