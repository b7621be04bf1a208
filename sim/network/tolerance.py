"""The flow network's completion tolerance: the one home of its default (no imports, so any module
of the network, :mod:`sim.network.flows` included, can take it without a cycle).

``completion_rtol`` (:mod:`sim.network.flows`): at each completion event, flows whose remaining time
is at most ``completion_rtol`` x their age so far complete as well. Each flow's duration is then
shortened by at most that fraction, and the number of rate recomputations stays near
ln(last / first completion time) / ``completion_rtol`` when ECMP collisions give thousands of flows
distinct rates. 0 means exact.

:data:`COMPLETION_RTOL` = 1e-2 (a flow's time at most 1% short) is the default of every run: scenarios
(``cluster.completion_rtol``), ``twin collective --completion-rtol``, the DeepEP kernels, the
pipeline's sends and the ZeRO-1 collectives. docs/ARCHITECTURE.md ("Network model") states it.
"""

from __future__ import annotations

COMPLETION_RTOL = 1e-2
