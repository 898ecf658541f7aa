"""The tools around the server: the converter (``archive``), the deployment check and its
comparison, TorchServe as a subprocess, a load generator, rendered test pages (``synth``)
and drawings. None of them runs inside a served archive: a worker imports ``mmocr_serve``
alone (its ``archive.RUNTIME_MODULES``). Importing ``mmocr_serve`` first silences its
stack's import-time notices here too.
"""

import mmocr_serve  # noqa: F401
