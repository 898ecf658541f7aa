"""mmocr-serve: serve MMOCR 0.x text detectors and recognizers behind TorchServe.

Importing this package is cheap: mmocr, mmcv and torch are imported only by the modules
that run models (``loading``, ``engine``) and the archive builder, when they are used.
"""

__version__ = "0.1.0"
