"""The chunk model: a stage's layers for one micro-batch as tasks on a GPU's compute, weight-gradient
and DeepEP streams, timed alone (``timer``, ``streams``), and read back as a function of its
communication (``plan``)."""
