"""mmocr-serve: serve MMOCR 0.x text detectors and recognizers behind TorchServe.

Importing this package is cheap: mmocr, mmcv and torch are imported only by the modules
that run models (``loading``, ``engine``) and the archive builder, when they are used.
Before they are, two import-time notices that say nothing about this stack are silenced
here, so that every front end prints only its own output: mmcv 1.x's announcement of
mmcv 2.0, and torch's "No CUDA runtime is found" where a CUDA toolkit is installed
without a GPU (a CPU worker needs no CUDA runtime).
"""

import logging
import warnings

__version__ = "0.1.0"

warnings.filterwarnings("ignore", message="On January 1, 2023, MMCV will release v2.0.0",
                        category=UserWarning)


class _NoCudaRuntimeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeNotice())
