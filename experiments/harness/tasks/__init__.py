"""Task families: what every family shares (``family``), each family in one module, and the registry."""
