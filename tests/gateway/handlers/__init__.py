"""Small Lambda handlers the gateway tests run as real functions in worker processes."""
