"""No error about a malformed Event Hubs connection string quotes its key or signature.

A mistyped separator ('SharedAccessKeyName=send SharedAccessKey=<key>') made the key part of another
segment's value, which the errors quoted whole.
"""

from __future__ import annotations

import pytest
from streamlab.connectors.eventhub import EventHubSink, EventHubSource, parse_eventhub_connection_string

from streamlab.errors import ParameterError

# Distinct characters, so that any 6 of them in a row in a message can only come from the secret.
KEY = "Zq9Xw2Lk7Pv4Rt6Ym1Nb8Hc3Jd5Fg0Ss+Uu/Ee4Oo7A="
SIG = "SharedAccessSignature sr=sb%3a%2f%2fns1&sig=Zq9Xw2Lk7Pv4Rt6Ym1Nb8Hc3Jd5%2B&se=1&skn=send"
SIG_SECRET = "Zq9Xw2Lk7Pv4Rt6Ym1Nb8Hc3Jd5%2B"
EP = "Endpoint=sb://ns1.servicebus.windows.net/"
NAME = "SharedAccessKeyName=send"

MALFORMED = {
    "space between name and key": f"{EP};{NAME} SharedAccessKey={KEY}",
    "comma between name and key": f"{EP};{NAME},SharedAccessKey={KEY}",
    "commas everywhere": f"{EP},{NAME},SharedAccessKey={KEY}",
    "line break between name and key": f"{EP};{NAME}\nSharedAccessKey={KEY}",
    "tab between name and key": f"{EP};{NAME}\tSharedAccessKey={KEY}",
    "no separator after the endpoint's host": f"Endpoint=sb://ns1.servicebus.windows.net:{NAME};SharedAccessKey={KEY}",
    "no separator after the endpoint": f"{EP}SharedAccessKey={KEY};{NAME}",
    "key in the endpoint's port": f"Endpoint=sb://ns1.servicebus.windows.net:{KEY};{NAME};SharedAccessKey=x",
    "key before name, space": f"{EP};SharedAccessKey={KEY} {NAME}",
    "key before name, comma": f"{EP};SharedAccessKey={KEY},{NAME}",
    "key with ':' for '='": f"{EP};{NAME};SharedAccessKey:{KEY}",
    "key with a space for '=' after a space": f"{EP};{NAME} SharedAccessKey {KEY}",
    "key run into the emulator flag": f"{EP};{NAME};UseDevelopmentEmulator=true SharedAccessKey={KEY}",
    "key run into the entity path, twice": f"{EP};{NAME};SharedAccessKey=x;EntityPath=h,SharedAccessKey={KEY}",
    "key twice": f"{EP};{NAME};SharedAccessKey={KEY};SharedAccessKey={KEY}",
    "signature after a space": f"{EP} SharedAccessSignature={SIG}",
    "signature after a comma": f"{EP};EntityPath=hub,SharedAccessSignature={SIG}",
    "signature with a space for '='": f"{EP};{NAME} SharedAccessSignature {SIG}",
    "signature with the name after it": f"{EP};SharedAccessSignature={SIG} {NAME}",
}


def _fragments(secret: str, size: int = 6) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def _error(make: object, text: str) -> str:
    with pytest.raises(ParameterError) as info:
        make(text)  # type: ignore[operator]
    return str(info.value)


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize(
    "make",
    [
        parse_eventhub_connection_string,
        lambda text: EventHubSource(text, eventhub="h"),
        lambda text: EventHubSink(text, eventhub="h"),
    ],
    ids=["parse", "source", "sink"],
)
def test_no_error_quotes_any_part_of_the_key_or_signature(make: object, text: str) -> None:
    message = _error(make, text)
    leaked = [f for f in _fragments(KEY) | _fragments(SIG_SECRET) if f in message]
    assert not leaked, message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            MALFORMED["space between name and key"],
            "segment 2 (SharedAccessKeyName=...) holds SharedAccessKey= after a space",
        ),
        (MALFORMED["commas everywhere"], "segment 1 (Endpoint=...) holds SharedAccessKeyName= after a comma"),
        (MALFORMED["line break between name and key"], "holds SharedAccessKey= after a line break"),
        (MALFORMED["no separator after the endpoint's host"], "holds SharedAccessKeyName= after ':'"),
        (
            MALFORMED["key before name, space"],
            "segment 2 (SharedAccessKey=...) holds SharedAccessKeyName= after a space",
        ),
        (
            MALFORMED["signature after a space"],
            "segment 1 (Endpoint=...) holds SharedAccessSignature= after a space",
        ),
    ],
)
def test_run_together_segments_are_named_with_their_separator_and_the_fix(text: str, says: str) -> None:
    message = _error(parse_eventhub_connection_string, text)
    assert says in message and "Fix: separate the segments by ';'" in message, message


def test_quoted_values_are_cut_before_the_secret_but_keep_what_helps() -> None:
    message = _error(parse_eventhub_connection_string, MALFORMED["key with a space for '=' after a space"])
    assert "has SharedAccessKeyName='send…' but no SharedAccessKey" in message
    assert "as a segment of its own, after a ';'" in message
    message = _error(parse_eventhub_connection_string, MALFORMED["key in the endpoint's port"])
    assert (
        "'sb://ns1.servicebus.windows.net' + ':...'" in message
        and "characters after the last ':' (not shown)" in message
    )


@pytest.mark.parametrize(
    "text",
    [
        # keys whose base64 text holds a known name and '=' after '+' or '/' are keys, not two segments
        f"{EP};{NAME};SharedAccessKey=ab+EntityPath=",
        f"{EP};{NAME};SharedAccessKey=ab/Endpoint==",
        f"{EP};SharedAccessSignature={SIG}",
    ],
)
def test_well_formed_strings_still_parse(text: str) -> None:
    conn = parse_eventhub_connection_string(text)
    assert conn.host == "ns1.servicebus.windows.net" and (conn.has_key or conn.has_signature)
