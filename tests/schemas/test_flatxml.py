"""The flat XML reader behind WeCom's envelope and callbacks: what it takes, what it refuses."""

from __future__ import annotations

import pytest

from schemas.vendors.flatxml import NotFlatXml, flat_fields


def test_fields_are_the_childless_children_of_the_root_as_stripped_text() -> None:
    document = (
        b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt>\n abc= \n</Encrypt>"
        b"<Nested><Deeper>x</Deeper></Nested><Empty/></xml>"
    )
    assert flat_fields(document) == {"ToUserName": "ww1", "Encrypt": "abc=", "Empty": ""}


@pytest.mark.parametrize(
    "document",
    [
        b"<x><Encrypt>a</Encrypt></x>",  # another root
        b"<xml><Encrypt>a</xml>",  # not well-formed
        b'<?xml version="1.0" encoding="x-nope"?><xml/>',  # an encoding nobody knows
        b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml>&b;</xml>',
        b'<!DOCTYPE xml SYSTEM "http://example.com/x.dtd"><xml/>',
        b"",
    ],
    ids=["root", "unclosed", "encoding", "entities", "external-dtd", "empty"],
)
def test_anything_else_is_refused(document: bytes) -> None:
    with pytest.raises(NotFlatXml):
        flat_fields(document)
