"""The HLS backend: the quantised IR as an hls4ml 1.3 project (``render_hls``), read back with ``load_project``.

``project`` holds what a written project is, ``layers`` the hls4ml layer(s) of
every IR node, ``writer`` builds and writes the project, ``readme`` documents
it for the vendor tools.  The C simulation that checks it is ``sim.hls_csim``.
"""

from mlinfn_compress.backends.hls.layers import LayerSpec, UnsupportedNode, layer_specs
from mlinfn_compress.backends.hls.project import (
    BACKENDS,
    COMPILABLE,
    INPUT_LAYER,
    PROJECT_FILE,
    HlsLayer,
    HlsProject,
    backend_name,
    fixed_from_hls,
    hls_type,
    load_project,
)
from mlinfn_compress.backends.hls.writer import model_precisions, render_hls, write_tb_data

__all__ = [
    "BACKENDS",
    "COMPILABLE",
    "INPUT_LAYER",
    "PROJECT_FILE",
    "HlsLayer",
    "HlsProject",
    "LayerSpec",
    "UnsupportedNode",
    "backend_name",
    "fixed_from_hls",
    "hls_type",
    "layer_specs",
    "load_project",
    "model_precisions",
    "render_hls",
    "write_tb_data",
]
