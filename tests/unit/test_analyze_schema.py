"""The fields of an extraction from a JSON schema (the CLI's --schema file and the UI's upload
read it the same way): its properties with their descriptions, or a list of names; anything
else one line naming where it came from."""

from __future__ import annotations

import json

import pytest

from app.services.analysis.types import BadAnalysis, schema_fields


def test_a_schema_gives_its_properties_with_their_descriptions():
    schema = {"type": "object", "properties": {"party": {"description": "who signs"},
                                               "amount": {"type": "number"}}}
    assert schema_fields(json.dumps(schema)) == ("party: who signs", "amount")
    assert schema_fields('["party", "start date"]') == ("party", "start date")


@pytest.mark.parametrize("text, message", [
    ("{not json", "upload.json is not JSON"),
    ('{"properties": {}}', "upload.json: give a JSON schema with `properties`"),
    ("[1, 2]", "upload.json: give a JSON schema"),
    ('"party"', "upload.json: give a JSON schema"),
])
def test_anything_else_is_one_line_naming_where_it_came_from(text, message):
    with pytest.raises(BadAnalysis, match="^" + message.replace("`", ".")) as caught:
        schema_fields(text, "upload.json")
    assert "\n" not in str(caught.value)
