"""Shared machinery the stages are built from, in the order data flows: ``tasks`` (task families), ``training``
(models, the supervised and GRPO loops, the sampler), ``reading`` (sources, feature groups, labelling, patching,
diffing); ``studies`` holds pieces one study owns, ``engines`` talks to TRL and verl; ``cli``, ``executors``,
``rundir``, ``seeds`` and ``tally`` serve every layer."""
