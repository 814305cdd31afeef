"""pyweb: a WSGI app whose answers depend on its locked dependencies."""
