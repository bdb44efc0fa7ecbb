"""Neutral building blocks shared by every layer (argument checks, split names, colours, config
flattening). ``common`` imports nothing else of lossbench, and everything may import it."""
