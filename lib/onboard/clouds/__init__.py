# One small module per cloud profile; import only the one a product uses.
