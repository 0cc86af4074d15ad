"""Passes: transformations of the IR (pruning, batch-norm folding, quantisation, the table softmax)."""
