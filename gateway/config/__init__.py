"""Configuration: one schema of every setting (type, default, bounds, environment override, doc),
read from the environment and the TOML file at start-up and validated all at once.

``schema`` is the mechanism (tables, ``Env``, loading, error messages, JSON Schema); ``settings``
states the gateway's keys and ``load_settings``.
"""
