"""A research group's own pieces, in a module outside the package: what docs/extending.md walks through."""
