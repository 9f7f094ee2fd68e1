"""The `coldwatch` command: `main` (the parser and the service commands), `ops` (models, rollouts, retraining
through the API), `users` (accounts and API tokens, straight in SQL)."""
