"""lazytrain: lazy PyTorch architectures declared in Hydra configs, materialized by a dry run,
initialized, trained with Lightning and tracked in TensorBoard."""

from lazytrain import resolvers as _resolvers  # noqa: F401  (registers the config's resolvers)
