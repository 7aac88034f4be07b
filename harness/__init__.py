"""Live servers, clients and faults shared by the tests, bench/ and soak/ (not collected as tests)."""
