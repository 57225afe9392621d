"""Golden files, every form: ``tests/golden/<form>/<case>.input`` (the Kafka value's exact bytes) must be
sent as ``<case>.expected`` (the exact JSON body), or fail with a located error containing ``<case>.error``.

The same inputs also go through ``auto``, which must recognise each form by itself. Avro schemas come from
``<case>.avsc`` here; ``tests/integration/test_avro_registry.py`` runs the Avro cases through the registry.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from streamapp.codecs import Codecs, build_codecs
from streamapp.codecs.output import encode_json
from streamapp.errors import DecodeError
from streamapp.records import RecordCoordinates
from tests.paths import GOLDEN

WHERE = RecordCoordinates("golden", 3, 99)


class GoldenSchemas:
    """The Avro cases' schemas, by the id framed in each ``.input``."""

    def __init__(self) -> None:
        self.by_id = {}
        for schema_file in (GOLDEN / "avro").glob("*.avsc"):
            framed_id = int.from_bytes(schema_file.with_suffix(".input").read_bytes()[1:5], "big")
            self.by_id[framed_id] = json.loads(schema_file.read_text())

    async def fetch(self, schema_id: int) -> object:
        return self.by_id[schema_id]


#: form folder -> the converters that must read it: (value.converter, value.converter.schemas.enable)
FORMS = {
    "json": [("json", False), ("json", None), ("auto", None)],
    "string": [("string", None)],
    "connect_json": [("json", True), ("auto", None)],
    "avro": [("avro", None), ("auto", None)],
}


def cases() -> list[tuple[str, str, bool | None, str]]:
    found = []
    for form, converters in FORMS.items():
        for input_file in sorted((GOLDEN / form).glob("*.input")):
            if form != "connect_json" or input_file.with_suffix(".expected").exists():
                found.extend((form, conv, envelope, input_file.stem) for conv, envelope in converters)
            else:  # an invalid envelope is only invalid where an envelope is required
                found.append((form, "json", True, input_file.stem))
    return found


def codecs_for(converter: str, envelope: bool | None) -> Codecs:
    return build_codecs(converter, value_envelope=envelope, schema_source=GoldenSchemas())


@pytest.mark.parametrize(("form", "converter", "envelope", "case"), cases())
def test_golden(form: str, converter: str, envelope: bool | None, case: str) -> None:
    data = (GOLDEN / form / f"{case}.input").read_bytes()
    codecs = codecs_for(converter, envelope)
    asyncio.run(codecs.prefetch([data]))
    expected = GOLDEN / form / f"{case}.expected"
    if expected.exists():
        assert encode_json(codecs.value(data, WHERE)) == expected.read_bytes()
        return
    with pytest.raises(DecodeError) as info:
        codecs.value(data, WHERE)
    assert str(info.value).startswith("record golden/3@99: ")
    assert (GOLDEN / form / f"{case}.error").read_text().strip() in str(info.value)


def test_every_form_has_cases_and_every_case_an_outcome() -> None:
    for form in FORMS:
        inputs = list((GOLDEN / form).glob("*.input"))
        assert inputs, f"no golden inputs for {form}"
        for input_file in inputs:
            outcomes = [input_file.with_suffix(s).exists() for s in (".expected", ".error")]
            assert outcomes.count(True) == 1, f"{input_file}: needs exactly one of .expected / .error"
