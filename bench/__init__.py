"""`make bench`: how much the function adds to the gateway's own latency (see bench/__main__.py)."""
