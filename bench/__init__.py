"""Benchmarks of the training engine and the queue; ``make bench`` runs ``bench/run.py``."""
