"""The band study's steps after training (``experiments.band_study`` runs them in order): matching, feature groups,
gain attribution and activity, checkpoint and model diffing."""
