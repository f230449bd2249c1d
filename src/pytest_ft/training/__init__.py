"""Fine-tuning jobs: the API, their state, and training from a suite."""
