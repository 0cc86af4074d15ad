"""mlinfn-compress: compress trained networks into bit-exact, verified FPGA firmware.

QKeras and tensorflow-model-optimization need TensorFlow's ``tf.keras`` to be
tf_keras (Keras 2), and TensorFlow fixes that choice when it is first
imported: importing this package sets ``TF_USE_LEGACY_KERAS=1`` unless the
environment already says otherwise.  Keras 3 stays available as ``import keras``.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from mlinfn_compress._version import __version__  # noqa: E402
from mlinfn_compress.api import Run, compress, load_report, simulate, test_outputs, verify  # noqa: E402
from mlinfn_compress.compress.frameworks.keras.tfkeras import tf_keras  # noqa: E402
from mlinfn_compress.errors import UserError  # noqa: E402

__all__ = [
    "Run",
    "UserError",
    "__version__",
    "compress",
    "load_report",
    "simulate",
    "test_outputs",
    "tf_keras",
    "verify",
]
