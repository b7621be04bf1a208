"""The MoE layer and its expert-parallel placement (DeepSeek-V3 defaults, REFERENCE.md sections 1, 4).

* 256 routed experts, 8 per token (``topk``), selected within at most ``node_limit`` = 4 groups;
  in training the groups are the nodes of the EP group (EP64 = 8 nodes of 8 GPUs, 4 experts per
  GPU); a group's score is the sum of its best ``topk // node_limit`` = 2 (bias-adjusted) scores
  (at least 1; DeepSeek-V3's code sums the best 2 for its M = 4: the floor keeps that and scales it
  for other M, e.g. 8 for M = 1, 2 for M = 3, 1 for M >= 5).
* Dispatch payload: FP8 hidden state (1 byte/element) plus one FP32 scale per 128 elements
  (4/128 byte/element); combine payload: BF16 (2 bytes/element). Both are parameters
  (:mod:`sim.units`).

The defaults are DeepSeek-V3's: the model's fields come from :data:`sim.model.spec.DEEPSEEK_V3`
(``n_routed_experts``, ``n_activated_experts``, ``n_limited_groups``, ``dim``) and the EP group from
its training layout (:data:`sim.layout_defaults.DEFAULT_EP`); nothing is copied here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ScenarioError
from sim.layout_defaults import DEFAULT_EP
from sim.model.megatron_dispatch import bf16_rows
from sim.model.spec import DEEPSEEK_V3, ModelSpec
from sim.units import BF16_BYTES, FP8_TILE_BYTES

LOGFMT_TILE_BYTES = 2 * BF16_BYTES / 128  # assumption: a 1x128 tile's min and max of log|x| as two BF16 values

COMBINE_FORMATS = {
    "bf16": BF16_BYTES,
    "logfmt10": 10 / 8 + LOGFMT_TILE_BYTES,
    "logfmt8": 8 / 8 + LOGFMT_TILE_BYTES,
}
"""Bytes per element of the combine's payload (``comm.combine_format``): DeepSeek's BF16, or the ISCA'25
paper's LogFMT-nBit (REFERENCE.md section 10: 1 sign bit and n-1 bits of log-space magnitude between a
tile's min and max, 8 to 10 bits). The encode and decode kernels are not modelled (the paper did not
deploy LogFMT because they cost GPU time): what it saves is an upper bound."""


@dataclass(frozen=True)
class MoESpec:
    experts: int = DEEPSEEK_V3.n_routed_experts
    topk: int = DEEPSEEK_V3.n_activated_experts
    node_limit: int = DEEPSEEK_V3.n_limited_groups
    ep: int = DEFAULT_EP
    gpus_per_node: int = 8
    hidden: int = DEEPSEEK_V3.dim
    dispatch_bytes_per_elem: float = FP8_TILE_BYTES
    combine_bytes_per_elem: float = BF16_BYTES

    @staticmethod
    def of_model(
        model: ModelSpec,
        ep: int,
        etp: int = 1,
        combine_format: str = "bf16",
        domain_gpus: int | None = None,
        dispatcher: str = "deepep",
        dispatch_format: str = "fp8",
    ) -> MoESpec:
        """The MoE layers of ``model`` (config.json fields) spread over ``ep`` GPUs; under expert TP
        ``etp`` an EP group takes every ``etp``-th GPU of a node (:meth:`sim.step.layout.Layout.ep_group`),
        so it has ``gpus_per_node / etp`` of them in each node. ``combine_format``: the combine's payload
        (:data:`COMBINE_FORMATS`). ``domain_gpus``: the NVLink domain DeepEP sees as a node (default an
        H800 node's 8; a rack's under ``cluster.scale_up``, where the EP group's messages all go over
        NVLink). ``dispatcher``, ``dispatch_format``: DeepSeek's DeepEP dispatches FP8 rows under an
        FP8 recipe; Megatron's dispatchers (its NCCL all-to-all, ``alltoall``, and its DeepEP path,
        ``dispatch_format`` bf16) send the BF16 hidden states as they are (:mod:`sim.model.megatron_dispatch`)."""
        fp8_rows = model.dtype == "fp8" and not bf16_rows(model.dtype, dispatcher, dispatch_format)
        return MoESpec(
            gpus_per_node=(domain_gpus or MoESpec.gpus_per_node) // etp,
            combine_bytes_per_elem=COMBINE_FORMATS[combine_format],
            experts=model.n_routed_experts,
            topk=model.n_activated_experts,
            node_limit=model.n_limited_groups,
            ep=ep,
            hidden=model.dim,
            dispatch_bytes_per_elem=FP8_TILE_BYTES if fp8_rows else BF16_BYTES,  # bf16: no FP8 dispatch
        )

    def __post_init__(self) -> None:
        if self.experts == 0 and self.topk == 0:  # a dense model: no MoE layer, nothing routed
            return
        checks = [
            (
                "ep",
                (self.ep >= 1 and self.ep % self.gpus_per_node == 0) or self.ep < self.gpus_per_node,
                f"EP ({self.ep}) must be a multiple of gpus_per_node ({self.gpus_per_node}) or fit in one node",
            ),
            ("experts", self.experts % self.ep == 0, f"experts ({self.experts}) must divide evenly over EP {self.ep}"),
            ("topk", 1 <= self.topk <= self.experts, f"topk must be in 1..{self.experts}, got {self.topk}"),
            ("node_limit", self.node_limit >= 1, f"node_limit must be >= 1, got {self.node_limit}"),
            (
                "topk",
                self.topk <= self.limit * self.experts // self.groups,
                f"topk ({self.topk}) exceeds the experts of {self.limit} groups",
            ),
        ]
        for key, ok, msg in checks:
            if not ok:
                raise ScenarioError(key, msg)

    @property
    def nodes(self) -> int:
        """Nodes spanned by one EP group."""
        return max(1, self.ep // self.gpus_per_node)

    @property
    def groups(self) -> int:
        """Expert groups = nodes of the EP group (DeepSeek-V3 training)."""
        return self.nodes

    @property
    def limit(self) -> int:
        """Groups a token may use: node_limit, or every group when the EP group has fewer nodes or the
        limit is at least top-k (no limit: a token's k experts reach at most k nodes; with fewer groups
        kept than k there would be a node to spare)."""
        return self.groups if self.node_limit >= self.topk else min(self.node_limit, self.groups)

    @property
    def limits_tokens(self) -> bool:
        """Whether the node limit keeps tokens from nodes they would reach without it: fewer groups may
        be used than the EP group has (M below both its nodes and top-k)."""
        return self.limit < self.groups

    @property
    def experts_per_gpu(self) -> int:
        return self.experts // self.ep

    @property
    def experts_per_group(self) -> int:
        return self.experts // self.groups

    @property
    def group_topk(self) -> int:
        """Scores summed for a group's score: topk / node_limit (DeepSeek-V3: 2)."""
        return max(1, self.topk // self.limit)


def unused_node_limit(spec: MoESpec, default: int) -> str | None:
    """Why the node limit M of ``spec`` (``model.n_limited_groups``, ``--n-limited-groups``) given in
    place of ``default`` changes nothing, with what to do, or None where it changes the routing. The
    one rule of the scenario's key (:func:`sim.assemble.assemble`) and of the commands' flag
    (:func:`sim.cli.common.refuse_unbound_node_limit`). Routing reads M only through :attr:`MoESpec.limit`,
    the groups a token may use, which is every node of the EP group for any M from the node count up: M
    equal to the node count is no limit (a what-if beside a limiting default), and M above it routes
    exactly as that, so it is refused rather than read as a larger limit. Where neither M nor
    ``default`` limits a token (EP within one node, say), M is not used."""
    from dataclasses import replace

    if spec.nodes == 1:
        return f"not used: EP {spec.ep} is one node (every token stays in it, whatever the limit); remove it"
    if not spec.limits_tokens and not replace(spec, node_limit=default).limits_tokens:
        bound = min(spec.nodes, spec.topk)
        what = f"nodes of EP {spec.ep}" if spec.nodes <= spec.topk else "experts a token picks"
        return (
            f"not used: neither M = {spec.node_limit} nor the default {default} is below {bound}, the {what}, "
            "so neither limits a token; remove it"
        )
    if spec.node_limit > spec.nodes:
        return (
            f"M = {spec.node_limit} is more than the {spec.nodes} nodes of EP {spec.ep}: a token cannot reach more "
            f"nodes than the EP group has, so it routes as M = {spec.nodes} (every node: no limit); "
            f"give at most {spec.nodes}"
        )
    return None
