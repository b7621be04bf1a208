"""Parameter counts against DeepSeek's published figures (tolerance 1% unless stated).

* "671B total parameters with 37B activated for each token": DeepSeek-V3 Technical Report
  (arXiv 2412.19437), abstract; README.md of deepseek-ai/DeepSeek-V3.
* "Total parameters: 671B; Activation parameters: 36.7B (including 0.9B for Embedding and 0.9B for
  the output Head)" and for the MTP module "11.5B unique parameters, excluding the shared 0.9B
  Embedding and 0.9B output Head": README_WEIGHTS.md of deepseek-ai/DeepSeek-V3.
* "The total size of DeepSeek-V3 models on Hugging Face is 685B, which includes 671B of the Main
  Model weights and 14B of the Multi-Token Prediction (MTP) Module weights": README.md of
  deepseek-ai/DeepSeek-V3. The checkpoint holds the MTP module's own copies of the embedding and
  head (model.layers.61.embed_tokens / shared_head.head) and the FP32 weight_scale_inv tensors.
"""

from __future__ import annotations

import pytest

from sim.model.params import embedding_params, model_params
from sim.model.spec import DEEPSEEK_V3

P = model_params(DEEPSEEK_V3)


def test_published_counts() -> None:
    print({k: round(v, 3) for k, v in P.to_dict().items()})
    assert P.main / 1e9 == pytest.approx(671, rel=0.01)
    assert P.activated / 1e9 == pytest.approx(36.7, rel=0.01)  # README_WEIGHTS.md
    assert abs(P.activated / 1e9 - 37) < 0.5  # the report's "37B", rounded to a billion
    assert P.mtp / 1e9 == pytest.approx(11.5, rel=0.01)
    assert P.checkpoint / 1e9 == pytest.approx(685, rel=0.01)
    assert (P.checkpoint - P.main) / 1e9 == pytest.approx(14, rel=0.05)  # "14B" of MTP weights


def test_exact_values() -> None:
    """Regression values (published figures are rounded)."""
    assert P.main == 671_026_419_200
    assert P.activated == 36_625_625_600
    # the README's "(including 0.9B for Embedding ...)" does not reproduce: the full table adds 0.93B
    assert P.activated_with_embedding_table - P.activated == embedding_params(DEEPSEEK_V3) - DEEPSEEK_V3.dim
    assert P.mtp == 11_610_068_224
