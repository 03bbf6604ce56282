"""Benchmarks of sdv-llmsynthor against the papers' tables and peers; one module per experiment."""
