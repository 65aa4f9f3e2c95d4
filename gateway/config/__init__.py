"""Configuration: one schema of every setting (type, default, bounds, environment override, doc),
read from the environment and the TOML file at start-up and validated all at once.

``schema`` is the mechanism (tables, ``Env``, loading, error messages, JSON Schema); ``settings``
states the gateway's keys and ``load_settings``. ``url_signing`` reads the keys that sign
cover-image links (``GATEWAY_URL_SIGNING_KEYS``), from the environment only: the config file
cannot hold them. A secret may also come from a file a ``*_FILE`` environment variable names (a
mounted Secret: ``GATEWAY_URL_SIGNING_KEYS_FILE``, ``GATEWAY_REDIS_URL_FILE``); those variables
exist only in the environment, and ``secret_files`` is their one reader (the cloud credentials'
too).
"""
