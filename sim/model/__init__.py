"""The model: its spec (DeepSeek-V3 by default), the operators of each layer, the layer-to-stage map
and the training FLOPs per token."""
