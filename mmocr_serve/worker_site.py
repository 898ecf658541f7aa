"""Packed as ``sitecustomize.py`` at the root of every archive. TorchServe puts the model
directory on its workers' ``PYTHONPATH``, so Python imports this at interpreter start,
before the worker imports torch: the one moment libgomp's wait policy can still be set."""

from mmocr_serve.openmp import sleep_while_waiting

sleep_while_waiting()
