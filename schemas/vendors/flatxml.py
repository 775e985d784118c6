"""A flat `<xml>` document (WeCom's envelope and its decrypted callback) read with expat
directly: one pass, no tree, no DTD, no entities.

The fields are the root's direct children that have no children of their own, each as its
stripped text (CDATA or bare). A document type declaration or an entity declaration is
refused outright (WeCom never sends one; refusing them rules out entity expansion), and so is
an encoding expat does not know.
"""

from __future__ import annotations

from xml.parsers import expat


class NotFlatXml(ValueError):
    """Not a well-formed document, or one with a DTD or entities."""


def flat_fields(document: bytes, root: str = "xml") -> dict[str, str]:
    parser = expat.ParserCreate()
    parser.buffer_text = True
    fields: dict[str, str] = {}
    text: list[str] = []
    depth, name, nested = 0, "", False

    def start(tag: str, _: dict[str, str]) -> None:
        nonlocal depth, name, nested
        depth += 1
        if depth == 1 and tag != root:
            raise NotFlatXml(f"root element is not <{root}>")
        if depth == 2:
            name, nested = tag, False
            text.clear()
        elif depth > 2:
            nested = True

    def end(_: str) -> None:
        nonlocal depth
        if depth == 2 and not nested:
            fields[name] = "".join(text).strip()
        depth -= 1

    def characters(data: str) -> None:
        if depth == 2 and not nested:
            text.append(data)

    def refuse(*_: object) -> None:
        raise NotFlatXml("document type and entity declarations are not accepted")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    try:
        parser.Parse(document, True)
    except (expat.ExpatError, LookupError, ValueError) as exc:
        raise NotFlatXml(str(exc)) from exc
    return fields
