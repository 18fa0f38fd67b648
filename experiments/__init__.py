"""Everything that makes things: the task, models, training, and runnable studies."""

import probes  # noqa: F401  (puts Hugging Face libraries in offline mode first)
