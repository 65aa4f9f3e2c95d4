"""HTTP in and out through aiohttp's web layer: routes, handlers, the representation of a
cached entry, CORS, request ids, the error envelope and the response tail both paths share."""
