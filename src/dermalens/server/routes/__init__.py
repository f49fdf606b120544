"""HTTP routes: the REST API (`predict`, `model`, `history`, mounted under /api/v1) and the web `pages`."""
