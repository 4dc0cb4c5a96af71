"""One module per simulated cloud; each registers its routes under its prefix."""
