"""Export to Paddle Inference and running the exported graph.

* :mod:`ppmatting.deploy.info` -- ``deploy.yaml``: what the exporter wrote and how to feed it.
* :mod:`ppmatting.deploy.predictor` -- a ``paddle.inference`` Config built from options (CPU
  oneDNN / threads / bf16, GPU memory pool / TensorRT / precision) and :class:`MattingPredictor`,
  which runs the graph with the same pre- and post-processing as ``DIM.predict``.
* :mod:`ppmatting.deploy.export` -- writing the static graph, the parity check against the
  dynamic-graph model, and ONNX through paddle2onnx.
* :mod:`ppmatting.deploy.onnx_predictor` -- :class:`OnnxPredictor`, the same interface over
  ONNX Runtime; :mod:`ppmatting.deploy.backends` picks the engine (infer.py ``--backend``).

``tools/export.py``, ``deploy/python/infer.py``, ``benchmarks/bench_infer.py`` and the fast path of
``tools/predict.py`` all go through these modules, so they build the same predictor.
"""
