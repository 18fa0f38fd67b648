"""Models and the loops that train and sample them: supervised (pretraining), GRPO, the sampler, rollouts."""
