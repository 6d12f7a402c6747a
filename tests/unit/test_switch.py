"""One reading of on/off values for config.ini and for legacy command parameters."""
from __future__ import annotations

import pytest

from gateway.config import on_off
from gateway.webapi.params import OnOff


@pytest.mark.parametrize("raw, expected", [
    ("on", True), ("ON", True), ("true", True), (" yes ", True), ("1", True),
    ("off", False), ("False", False), ("no", False), ("0", False),
], ids=lambda v: repr(v))
def test_config_and_command_parameters_read_a_switch_alike(raw, expected):
    assert on_off(raw) is expected
    assert OnOff().parse(raw) is expected


def test_each_reader_says_what_its_users_write():
    with pytest.raises(ValueError, match="expected true or false"):
        on_off("maybe")
    with pytest.raises(ValueError, match="expected on or off"):
        OnOff().parse("maybe")
