"""Tests of the operator (a package, so that its modules are not named after the stdlib operator module)."""
