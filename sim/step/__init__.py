"""The training step: the layout, every pipeline action a chunk, the step's event loop on one network
(``simulate``, ``shared``), ZeRO-1 and the optimizer, and the accounting of what it did."""
