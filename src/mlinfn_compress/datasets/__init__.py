"""Data sets for the tutorials: real ones where they can be fetched, documented synthetic stand-ins offline.

* ``jets``: the hls4ml LHC jet data set (OpenML ``hls4ml_lhc_jets_hlf``: 16
  high-level features, 5 classes g, q, W, Z, t) through scikit-learn's
  ``fetch_openml`` (cached), or ``synthetic_jets`` when there is no network
  or ``MLINFN_OFFLINE=1``;
* ``gravitational_waves``: coloured detector-like noise with sine-Gaussian
  bursts injected (always synthetic);
* ``ct_phantoms``: CT-like images made from the Shepp-Logan phantom with
  random elliptical lesions, and the lesion masks (always synthetic).

Every function takes a seed and returns the same arrays for the same seed.
"""

from mlinfn_compress.datasets.ct import ct_phantoms
from mlinfn_compress.datasets.gw import gravitational_waves
from mlinfn_compress.datasets.jets import JET_CLASSES, JET_FEATURES, JetData, jets, offline, synthetic_jets

__all__ = [
    "JET_CLASSES",
    "JET_FEATURES",
    "JetData",
    "ct_phantoms",
    "gravitational_waves",
    "jets",
    "offline",
    "synthetic_jets",
]
