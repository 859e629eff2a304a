"""Transforms: factories that return pure ``Request -> Request`` callables."""
