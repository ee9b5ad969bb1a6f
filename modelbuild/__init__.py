"""The recipe that rebuilds the bundled fraud and credit models from seeded synthetic data."""
