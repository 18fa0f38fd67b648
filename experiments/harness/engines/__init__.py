"""Other RL engines (TRL, verl): the files an export writes and reading what the engine wrote back."""
