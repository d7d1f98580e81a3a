"""One module per backend, each registering a builder with `engine.registry.register`: a new
backend is a new module here. Keep them light (imports inside the builder): the registry imports
every one of them to learn the names."""
