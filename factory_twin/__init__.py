"""factory-twin command line (the outermost layer: it may import twin, optimization and dashboard)."""
