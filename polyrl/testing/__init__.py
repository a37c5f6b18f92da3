"""Test support shipped with the package: event factories, loopback venue servers, fakes."""
