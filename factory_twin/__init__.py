"""factory_twin."""
