"""Repository functions: every SQL statement outside the engine wiring lives in this package."""
