"""Recipes: the schema, the book that switches the active recipe atomically, and the folder watch."""
