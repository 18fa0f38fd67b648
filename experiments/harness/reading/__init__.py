"""Reading checkpoints: sources and probe sets, feature groups, labelling and causal checks, patching, diffing."""
