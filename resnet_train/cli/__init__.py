"""Console scripts: thin wrappers that read configs and call the package."""
