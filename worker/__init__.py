"""The training side of ffqueue: networks from specs, the training loop, device choice.

This package imports torch; the service package ``ffqueue`` imports it only inside the
functions that train, so the CLI and the scheduler start fast.
"""
