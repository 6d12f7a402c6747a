"""Values the test configuration shares with the tests that call the WebAPI."""
from __future__ import annotations

ACCESS_KEY = "k3y-for-tests-0123456789"
