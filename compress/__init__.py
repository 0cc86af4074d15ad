"""mlinfn-compress: compress trained networks into bit-exact, verified FPGA firmware.

QKeras and tensorflow-model-optimization need TensorFlow's ``tf.keras`` to be
tf_keras (Keras 2), and TensorFlow fixes that choice when it is first
imported: importing this package sets ``TF_USE_LEGACY_KERAS=1`` unless the
environment already says otherwise.  Keras 3 stays available as ``import keras``.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

from .api import Run, compress, load_report, simulate, test_outputs, verify  # noqa: E402
from .errors import UserError  # noqa: E402
from .tfkeras import tf_keras  # noqa: E402

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
