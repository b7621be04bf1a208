"""Cluster topologies, routing, the flow-level network and collectives."""
