"""Thin resolvers: check the caller, call a service client, map the answer."""
