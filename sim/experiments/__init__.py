"""Experiments: many runs, or runs set beside published figures, above :mod:`sim.run`.

One module per experiment, each returning data (rows, dataclasses, the JSON layout of a command) and
never a file or a picture; ``reports`` renders what they return and the commands (``sim.cli``) join
the two:

* :mod:`~sim.experiments.study`: the variants a report sets beside a training step (every schedule's
  bubble beside the closed form, the SM split, a co-processor);
* :mod:`~sim.experiments.codesign`: co-design study files, expanded into one sweep (:mod:`sim.sweep`);
* :mod:`~sim.experiments.published`: every published figure the twin is compared with
  (``docs/validation.md``);
* :mod:`~sim.experiments.deepep_table`: DeepEP's published test setting as the twin predicts it;
* :mod:`~sim.experiments.trace_validation`: DeepSeek's traced F&B chunk pair and its kernels beside
  the chunk model and the cost model (the trace itself is read by ``calibrate``, which passes its
  figures in: ``sim`` never imports ``calibrate``).
"""
