"""Pure manifest builders: resource (+ settings, + the time) in, Kubernetes objects out.

Nothing here talks to the API server, so every builder is unit-tested on its own;
the reconcile modules apply what these return.
"""
