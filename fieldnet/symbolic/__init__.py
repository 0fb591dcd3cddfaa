"""Symbolic side: activations, Gaussian expectations, layer kernel maps, recursions."""
