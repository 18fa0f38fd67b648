"""Sparse autoencoders through sae_lens: architectures, training, evaluation."""
