"""Everything that makes things: the tasks, models, training, and the runnable stages and studies.

Importing it changes nothing; entry points (``harness.cli.run``) switch Hugging Face to offline mode and
matplotlib to a file backend.
"""
