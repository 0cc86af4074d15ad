"""mlinfn-compress: compress trained networks into bit-exact, verified FPGA firmware."""

__version__ = "0.1.0"
