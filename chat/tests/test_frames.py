"""Protocol v2's frame module: one definition gives the parser, the encoder, the schema, and the docs list them all."""
import json
import re
from io import StringIO
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command

from chat.realtime import frames, protocol
from chat.realtime.protocol import ProtocolError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented(section):
    """Return the frame types that a section of docs/protocol.md gives a heading (### `type`) to."""
    text = DOCS.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    end = min(end, text.find("\n# ", start + 1)) if end != -1 else text.find("\n# ", start + 1)
    return re.findall(r"^### `([a-z_]+)`", text[start:end], flags=re.MULTILINE)


def test_the_docs_list_every_frame_type_once_and_no_other():
    assert sorted(documented("Server frames (version 2)")) == sorted(map(frames.tag, frames.SERVER_FRAMES))
    assert sorted(documented("Client frames (version 2)")) == sorted(map(frames.tag, frames.CLIENT_FRAMES))


def test_the_schema_is_a_valid_json_schema_and_the_command_prints_it():
    schema = frames.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    out = StringIO()
    call_command("protocol_schema", stdout=out)
    assert json.loads(out.getvalue()) == schema


@pytest.mark.parametrize("frame_type", frames.CLIENT_FRAMES)
def test_the_schema_and_the_parser_agree_on_each_client_frames_fields(frame_type):
    client = {**frames.schema()["client"], "$defs": frames.schema()["$defs"]}
    example = {"type": frames.tag(frame_type), "room": "lobby", "body": "hi", "id": 1, "seq": 1, "after": 1, "emoji": "👍",
               "reason": "spam", "url": "https://example.com/"}
    if frame_type is frames.History:
        del example["seq"]
    fields = set(frame_type.__struct_fields__) | {"type"}
    example = {key: value for key, value in example.items() if key in fields}
    jsonschema.validate(example, client)
    assert isinstance(frames.parse(json.dumps(example)), frame_type)


@pytest.mark.parametrize("text,code,echo", [
    ('{"type": "send", "room": "lobby", "body": " ", "client_id": "c", "request_id": "r"}', "empty",
     {"request_id": "r", "room": "lobby", "client_id": "c"}),
    ('{"type": "send", "room": "lobby", "body": "' + "x" * 4001 + '"}', "too_long", {"room": "lobby"}),
    ('{"type": "subscribe", "room": "Lobby", "request_id": 7}', "invalid", {"request_id": 7}),
    ('{"type": "subscribe", "room": "lobby", "after": -1}', "invalid", {"room": "lobby"}),
    ('{"type": "history", "room": "lobby"}', "invalid", {"room": "lobby"}),
    ('{"type": "nothing", "request_id": "' + "x" * 65 + '"}', "invalid", {}),
    ('{"type": "ping", "request_id": true}', "invalid", {}),
    ('{"type": "ping", "request_id": ""}', "invalid", {}),
    ('[1]', "invalid", {}),
    ('{"type": "ping"', "invalid", {}),
    ('{"type": "send", "room": "lobby", "body": "a\\u0000b"}', "invalid", {"room": "lobby"}),
])
def test_a_bad_frame_is_refused_with_a_code_and_echoes_only_what_is_well_formed(text, code, echo):
    with pytest.raises(ProtocolError) as refused:
        frames.parse(text)
    assert refused.value.code == code
    assert {**({"client_id": refused.value.client_id} if refused.value.client_id else {}), **refused.value.echo} == echo


def test_an_event_is_encoded_for_each_version_from_the_same_data():
    data = {"id": 1, "seq": 2, "cseq": 3}
    assert json.loads(frames.encode_event("message_deleted", "lobby", data)) == {
        "type": "message_deleted", "room": "lobby", **data,
    }
    assert json.loads(protocol.encode_event("message_deleted", data)) == {"type": "message_deleted", **data}
    assert protocol.encode_event("room_activity", {"room": "lobby"}) is None


@pytest.mark.parametrize("has_more", [False, True])
def test_a_page_of_changes_cut_short_stays_within_the_limit_and_names_its_last_change(has_more):
    from types import SimpleNamespace

    changes = [SimpleNamespace(is_deleted=True, id=n, seq=n, cseq=1000 + n) for n in range(1, 200)]
    last = changes[-1].cseq
    text = frames.encode(frames.ChangesPage(room="lobby", cseq=last, changes=[], has_more=has_more))
    cut, covered = frames.fit_changes(text, changes, cseq=last, after=1000, has_more=has_more, max_bytes=2000)
    page = json.loads(cut)
    assert len(cut.encode()) <= 2000 and page["has_more"] and 0 < len(page["changes"]) < len(changes)
    assert page["cseq"] == covered == page["changes"][-1]["cseq"]
    text = frames.encode(frames.ChangesPage(room="lobby", cseq=1003, changes=[], has_more=False))
    whole, covered = frames.fit_changes(text, changes[:3], cseq=1003, after=1000, has_more=False, max_bytes=2000)
    assert covered == 1003 and json.loads(whole)["cseq"] == 1003
