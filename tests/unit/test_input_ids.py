"""Every input item type gets an id when sent without one (an empty id from a client was a KeyError, a 500)."""

from __future__ import annotations

import typing

from engine.models.items import InputItem
from engine.responses.input import _ID_PREFIX


def test_every_input_item_type_has_an_id_prefix():
    members = [typing.get_args(member)[0] for member in typing.get_args(typing.get_args(InputItem)[0])]
    types = {typing.get_args(model.model_fields["type"].annotation)[0] for model in members}
    assert len(types) == len(members) >= 13 and "file_search_call" in types
    assert types - {"item_reference"} <= set(_ID_PREFIX), types - set(_ID_PREFIX)
