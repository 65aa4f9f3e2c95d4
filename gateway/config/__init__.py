"""Configuration: one schema of every setting (type, default, bounds, environment override, doc),
read from the environment and the TOML file at start-up and validated all at once."""
