"""The stages of a run: options, loading, compression, quantisation, emission and verification by a target,
synthesis, the report, and the output folder written in full or not at all."""
