"""Retraining from staff labels: a worker (cloud/training/worker.py) claims jobs through the API."""
