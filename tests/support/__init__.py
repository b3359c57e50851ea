"""Test-support servers (fault-injecting file server, JSON-RPC proxy) for the integration tests."""
