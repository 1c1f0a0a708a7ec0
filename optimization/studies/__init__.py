"""Grid studies without a dispatch model: Duke headroom, synthetic BA load, batch runs."""
