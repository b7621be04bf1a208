"""Training workload on the GPUs: chunks of layers timed on compute, weight-gradient and
communication streams (``chunk``), with the parameters of that timing (``params``)."""
