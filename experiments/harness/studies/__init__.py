"""Pieces that belong to one study each (value, pruning, refinement, the reward studies)."""
