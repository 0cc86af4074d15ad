"""The core: a trained model in, a quantised IR out, and the one path a run takes.

``fixed`` (fixed-point types and their one rounding rule), ``ir`` (the graph
of shaped tensors and its golden model), ``passes`` (pruning, batch-norm
folding, quantisation, the table softmax), ``frameworks`` (Keras and
PyTorch: load, reference inference, fine-tuning, QAT, the framework twin)
and ``flow`` (the stages of a run, its options, report and output folder).
"""
